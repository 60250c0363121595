"""products and stock: listings, master SKUs, links, reservations, the stock ledger, push state;
product counts on sync logs, and one running sync per connection and kind

Revision ID: 0007
Revises: 0008
Create Date: 2026-12-01 21:41:35.087800
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
# 0008 (connect flows) was already the head when this landed; chained after it.
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.create_table(
        "inventory_skus",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("available", sa.Integer(), server_default="0", nullable=False),
        sa.Column("reserved", sa.Integer(), server_default="0", nullable=False),
        sa.Column("oversold", sa.Integer(), server_default="0", nullable=False),
        sa.Column("buffer", sa.Integer(), nullable=True),
        sa.Column("zero_below", sa.Integer(), nullable=True),
        sa.Column("max_quantity", sa.Integer(), nullable=True),
        sa.Column("seller_set", sa.Boolean(), server_default="false", nullable=False),
        sa.Column(
            "tracked_since",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("available >= 0", name=op.f("ck_inventory_skus_available_not_negative")),
        sa.CheckConstraint("oversold >= 0", name=op.f("ck_inventory_skus_oversold_not_negative")),
        sa.CheckConstraint("reserved >= 0", name=op.f("ck_inventory_skus_reserved_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_skus")),
        sa.UniqueConstraint("user_id", "sku", name=op.f("uq_inventory_skus_user_id_sku")),
    )
    op.create_table(
        "stock_ledger",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("master_sku_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("available_after", sa.Integer(), nullable=False),
        sa.Column("oversold", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=True),
        sa.Column("connection_id", sa.Uuid(), nullable=True),
        sa.Column("listing_id", sa.BigInteger(), nullable=True),
        sa.Column("platform_code", sa.String(length=32), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["master_sku_id"],
            ["inventory_skus.id"],
            name=op.f("fk_stock_ledger_master_sku_id_inventory_skus"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_ledger")),
    )
    op.create_index(
        "ix_stock_ledger_master_sku_id_id", "stock_ledger", ["master_sku_id", "id"], unique=False
    )
    op.create_table(
        "stock_reservations",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("master_sku_id", sa.BigInteger(), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("oversold_quantity", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("fulfilled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["master_sku_id"],
            ["inventory_skus.id"],
            name=op.f("fk_stock_reservations_master_sku_id_inventory_skus"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["marketplace_orders.id"],
            name=op.f("fk_stock_reservations_order_id_marketplace_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_reservations")),
        sa.UniqueConstraint(
            "order_id", "master_sku_id", name=op.f("uq_stock_reservations_order_id_master_sku_id")
        ),
    )
    op.create_index(
        "ix_stock_reservations_open",
        "stock_reservations",
        ["master_sku_id"],
        unique=False,
        postgresql_where=sa.text("released_at IS NULL"),
    )
    op.add_column(
        "marketplace_products", sa.Column("platform_code", sa.String(length=32), nullable=True)
    )
    op.add_column(
        "marketplace_products", sa.Column("image_url", sa.String(length=2048), nullable=True)
    )
    op.add_column(
        "marketplace_stock_levels",
        sa.Column("user_id", sa.String(length=128), server_default="", nullable=False),
    )
    op.add_column(
        "marketplace_stock_levels",
        sa.Column("platform_code", sa.String(length=32), server_default="", nullable=False),
    )
    op.add_column(
        "marketplace_stock_levels", sa.Column("currency", sa.String(length=3), nullable=True)
    )
    op.add_column(
        "marketplace_stock_levels", sa.Column("status", sa.String(length=64), nullable=True)
    )
    op.add_column(
        "marketplace_stock_levels", sa.Column("image_url", sa.String(length=2048), nullable=True)
    )
    op.add_column(
        "marketplace_stock_levels",
        sa.Column(
            "raw",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )
    op.add_column(
        "marketplace_stock_levels",
        sa.Column("push_status", sa.String(length=16), server_default="ok", nullable=False),
    )
    op.add_column(
        "marketplace_stock_levels", sa.Column("pushed_stock", sa.Integer(), nullable=True)
    )
    op.add_column("marketplace_stock_levels", sa.Column("push_message", sa.Text(), nullable=True))
    op.add_column(
        "marketplace_stock_levels",
        sa.Column("last_push_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "marketplace_stock_levels",
        sa.Column("push_seq", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.add_column(
        "marketplace_stock_levels",
        sa.Column("pushed_seq", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.add_column(
        "marketplace_stock_levels",
        sa.Column("push_attempts", sa.Integer(), server_default="0", nullable=False),
    )
    op.create_index(
        "ix_marketplace_stock_levels_pending",
        "marketplace_stock_levels",
        ["connection_id"],
        unique=False,
        postgresql_where=sa.text("push_status = 'pending'"),
    )
    op.create_index(
        "ix_marketplace_stock_levels_user_id_id",
        "marketplace_stock_levels",
        ["user_id", "id"],
        unique=False,
    )
    op.add_column(
        "marketplace_sync_logs",
        sa.Column("products_fetched", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column(
        "marketplace_sync_logs",
        sa.Column("products_created", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column(
        "marketplace_sync_logs",
        sa.Column("products_updated", sa.Integer(), server_default="0", nullable=False),
    )
    op.drop_index(
        op.f("uq_marketplace_sync_logs_one_running"),
        table_name="marketplace_sync_logs",
        postgresql_where="((status)::text = 'running'::text)",
    )
    op.create_index(
        "uq_marketplace_sync_logs_one_running",
        "marketplace_sync_logs",
        ["connection_id", "kind"],
        unique=True,
        postgresql_where=sa.text("status = 'running'"),
    )
    # sku_mappings was never written before this revision (no code used it); its rows, if any,
    # cannot be carried to the per-listing shape.
    op.execute("DELETE FROM sku_mappings")
    op.add_column("sku_mappings", sa.Column("listing_id", sa.BigInteger(), nullable=False))
    op.add_column("sku_mappings", sa.Column("master_sku_id", sa.BigInteger(), nullable=True))
    op.add_column("sku_mappings", sa.Column("source", sa.String(length=16), nullable=False))
    op.add_column(
        "sku_mappings",
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.drop_constraint(
        op.f("uq_sku_mappings_connection_id_channel_sku"), "sku_mappings", type_="unique"
    )
    op.create_index(
        op.f("ix_sku_mappings_master_sku_id"), "sku_mappings", ["master_sku_id"], unique=False
    )
    op.create_unique_constraint(op.f("uq_sku_mappings_listing_id"), "sku_mappings", ["listing_id"])
    op.drop_constraint(
        op.f("fk_sku_mappings_connection_id_marketplace_connections"),
        "sku_mappings",
        type_="foreignkey",
    )
    op.create_foreign_key(
        op.f("fk_sku_mappings_listing_id_marketplace_stock_levels"),
        "sku_mappings",
        "marketplace_stock_levels",
        ["listing_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.create_foreign_key(
        op.f("fk_sku_mappings_master_sku_id_inventory_skus"),
        "sku_mappings",
        "inventory_skus",
        ["master_sku_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.drop_column("sku_mappings", "connection_id")
    op.drop_column("sku_mappings", "channel_sku")
    op.drop_column("sku_mappings", "master_sku")


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.execute("DELETE FROM sku_mappings")
    op.add_column(
        "sku_mappings",
        sa.Column("master_sku", sa.VARCHAR(length=128), autoincrement=False, nullable=False),
    )
    op.add_column(
        "sku_mappings",
        sa.Column("channel_sku", sa.VARCHAR(length=128), autoincrement=False, nullable=False),
    )
    op.add_column(
        "sku_mappings", sa.Column("connection_id", sa.UUID(), autoincrement=False, nullable=False)
    )
    op.drop_constraint(
        op.f("fk_sku_mappings_master_sku_id_inventory_skus"), "sku_mappings", type_="foreignkey"
    )
    op.drop_constraint(
        op.f("fk_sku_mappings_listing_id_marketplace_stock_levels"),
        "sku_mappings",
        type_="foreignkey",
    )
    op.create_foreign_key(
        op.f("fk_sku_mappings_connection_id_marketplace_connections"),
        "sku_mappings",
        "marketplace_connections",
        ["connection_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.drop_constraint(op.f("uq_sku_mappings_listing_id"), "sku_mappings", type_="unique")
    op.drop_index(op.f("ix_sku_mappings_master_sku_id"), table_name="sku_mappings")
    op.create_unique_constraint(
        op.f("uq_sku_mappings_connection_id_channel_sku"),
        "sku_mappings",
        ["connection_id", "channel_sku"],
        postgresql_nulls_not_distinct=False,
    )
    op.drop_column("sku_mappings", "updated_at")
    op.drop_column("sku_mappings", "source")
    op.drop_column("sku_mappings", "master_sku_id")
    op.drop_column("sku_mappings", "listing_id")
    op.drop_index(
        "uq_marketplace_sync_logs_one_running",
        table_name="marketplace_sync_logs",
        postgresql_where=sa.text("status = 'running'"),
    )
    op.create_index(
        op.f("uq_marketplace_sync_logs_one_running"),
        "marketplace_sync_logs",
        ["connection_id"],
        unique=True,
        postgresql_where="((status)::text = 'running'::text)",
    )
    op.drop_column("marketplace_sync_logs", "products_updated")
    op.drop_column("marketplace_sync_logs", "products_created")
    op.drop_column("marketplace_sync_logs", "products_fetched")
    op.drop_index("ix_marketplace_stock_levels_user_id_id", table_name="marketplace_stock_levels")
    op.drop_index(
        "ix_marketplace_stock_levels_pending",
        table_name="marketplace_stock_levels",
        postgresql_where=sa.text("push_status = 'pending'"),
    )
    op.drop_column("marketplace_stock_levels", "push_attempts")
    op.drop_column("marketplace_stock_levels", "pushed_seq")
    op.drop_column("marketplace_stock_levels", "push_seq")
    op.drop_column("marketplace_stock_levels", "last_push_at")
    op.drop_column("marketplace_stock_levels", "push_message")
    op.drop_column("marketplace_stock_levels", "pushed_stock")
    op.drop_column("marketplace_stock_levels", "push_status")
    op.drop_column("marketplace_stock_levels", "raw")
    op.drop_column("marketplace_stock_levels", "image_url")
    op.drop_column("marketplace_stock_levels", "status")
    op.drop_column("marketplace_stock_levels", "currency")
    op.drop_column("marketplace_stock_levels", "platform_code")
    op.drop_column("marketplace_stock_levels", "user_id")
    op.drop_column("marketplace_products", "image_url")
    op.drop_column("marketplace_products", "platform_code")
    op.drop_index(
        "ix_stock_reservations_open",
        table_name="stock_reservations",
        postgresql_where=sa.text("released_at IS NULL"),
    )
    op.drop_table("stock_reservations")
    op.drop_index("ix_stock_ledger_master_sku_id_id", table_name="stock_ledger")
    op.drop_table("stock_ledger")
    op.drop_table("inventory_skus")
