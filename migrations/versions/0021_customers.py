"""customers: one buyer of a user across channels, the keys that link their orders, and how
far the refresh job has read each connection's orders

Existing orders are linked by the refresh cron (a connection without a mark is read from its
first order) or at once by `omni-sales rebuild-customers`.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 02:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.create_table(
        "customers",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("phone", sa.String(length=64), nullable=True),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column(
            "channels",
            postgresql.ARRAY(sa.String(length=32)),
            server_default=sa.text("'{}'::varchar[]"),
            nullable=False,
        ),
        sa.Column("order_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "total_spent",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("first_order_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_order_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("search_text", sa.Text(), server_default="", nullable=False),
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
    )
    op.create_index(
        "ix_customers_user_last_order",
        "customers",
        ["user_id", "last_order_at", "id"],
        unique=False,
    )
    op.create_table(
        "customer_keys",
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_keys_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "kind", "value", name=op.f("pk_customer_keys")),
    )
    op.create_index(
        op.f("ix_customer_keys_customer_id"), "customer_keys", ["customer_id"], unique=False
    )
    op.create_table(
        "customer_refresh_marks",
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.Column("refreshed_to", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["marketplace_connections.id"],
            name=op.f("fk_customer_refresh_marks_connection_id_marketplace_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", name=op.f("pk_customer_refresh_marks")),
    )
    op.create_table(
        "customer_orders",
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("order_version", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_orders_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["marketplace_orders.id"],
            name=op.f("fk_customer_orders_order_id_marketplace_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_customer_orders")),
    )
    op.create_index(
        "ix_customer_orders_customer", "customer_orders", ["customer_id", "order_id"], unique=False
    )
    op.create_index(
        "ix_marketplace_orders_connection_updated",
        "marketplace_orders",
        ["connection_id", "updated_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_index("ix_marketplace_orders_connection_updated", table_name="marketplace_orders")
    op.drop_index("ix_customer_orders_customer", table_name="customer_orders")
    op.drop_table("customer_orders")
    op.drop_table("customer_refresh_marks")
    op.drop_index(op.f("ix_customer_keys_customer_id"), table_name="customer_keys")
    op.drop_table("customer_keys")
    op.drop_index("ix_customers_user_last_order", table_name="customers")
    op.drop_table("customers")
