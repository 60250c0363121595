"""facebook live and messenger orders: live sessions and their codes, captured comments, social
order lines and state, the reply outbox, Messenger windows; orders get `channel` and
`buyer_external_id`

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 22:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.create_table(
        "live_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.Column("post_id", sa.String(length=128), nullable=False),
        sa.Column("keyword", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("currency", sa.String(length=3), server_default="THB", nullable=False),
        sa.Column("reply_template", sa.Text(), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
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
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["marketplace_connections.id"],
            name=op.f("fk_live_sessions_connection_id_marketplace_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_sessions")),
    )
    op.create_index(
        "ix_live_sessions_user_id_created_at",
        "live_sessions",
        ["user_id", "created_at"],
        unique=False,
    )
    op.create_index(
        "uq_live_sessions_open_post",
        "live_sessions",
        ["connection_id", "post_id"],
        unique=True,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_table(
        "messenger_threads",
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.Column("psid", sa.String(length=128), nullable=False),
        sa.Column("last_inbound_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["marketplace_connections.id"],
            name=op.f("fk_messenger_threads_connection_id_marketplace_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", "psid", name=op.f("pk_messenger_threads")),
    )
    op.create_table(
        "live_comments",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("comment_id", sa.String(length=128), nullable=False),
        sa.Column("buyer_id", sa.String(length=128), nullable=False),
        sa.Column("buyer_name", sa.String(length=255), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("commented_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("pending", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["marketplace_orders.id"],
            name=op.f("fk_live_comments_order_id_marketplace_orders"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["live_sessions.id"],
            name=op.f("fk_live_comments_session_id_live_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_comments")),
        sa.UniqueConstraint(
            "session_id", "comment_id", name=op.f("uq_live_comments_session_id_comment_id")
        ),
    )
    op.create_index(
        "ix_live_comments_session_commented",
        "live_comments",
        ["session_id", "commented_at", "comment_id"],
        unique=False,
    )
    op.create_index(
        "ix_live_comments_pending",
        "live_comments",
        ["session_id", "commented_at", "comment_id"],
        unique=False,
        postgresql_where=sa.text("pending"),
    )
    op.create_table(
        "live_session_products",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("master_sku_id", sa.BigInteger(), nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("price", sa.Numeric(), nullable=False),
        sa.Column("cap", sa.Integer(), nullable=True),
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
        sa.ForeignKeyConstraint(
            ["master_sku_id"],
            ["inventory_skus.id"],
            name=op.f("fk_live_session_products_master_sku_id_inventory_skus"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["live_sessions.id"],
            name=op.f("fk_live_session_products_session_id_live_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_session_products")),
        sa.UniqueConstraint(
            "session_id", "code", name=op.f("uq_live_session_products_session_id_code")
        ),
    )
    op.create_table(
        "social_orders",
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("buyer_id", sa.String(length=128), nullable=False),
        sa.Column("psid", sa.String(length=128), nullable=True),
        sa.Column("first_comment_id", sa.String(length=128), nullable=True),
        sa.Column("is_open", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("version", sa.Integer(), server_default="0", nullable=False),
        sa.Column("reply_error", sa.Text(), nullable=True),
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
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["marketplace_connections.id"],
            name=op.f("fk_social_orders_connection_id_marketplace_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["marketplace_orders.id"],
            name=op.f("fk_social_orders_order_id_marketplace_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["live_sessions.id"],
            name=op.f("fk_social_orders_session_id_live_sessions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_social_orders")),
    )
    op.create_index(
        op.f("ix_social_orders_connection_id"), "social_orders", ["connection_id"], unique=False
    )
    op.create_index(
        "uq_social_orders_open_buyer",
        "social_orders",
        ["session_id", "buyer_id"],
        unique=True,
        postgresql_where=sa.text("is_open"),
    )
    op.create_table(
        "social_replies",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("comment_id", sa.String(length=128), nullable=True),
        sa.Column("order_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("recipient", sa.String(length=160), nullable=True),
        sa.Column("messaging_type", sa.String(length=32), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("message_id", sa.String(length=255), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["marketplace_connections.id"],
            name=op.f("fk_social_replies_connection_id_marketplace_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["marketplace_orders.id"],
            name=op.f("fk_social_replies_order_id_marketplace_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_social_replies")),
    )
    op.create_index("ix_social_replies_order_id", "social_replies", ["order_id"], unique=False)
    op.create_index(
        "ix_social_replies_pending",
        "social_replies",
        ["connection_id", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index("uq_social_replies_dedupe_key", "social_replies", ["dedupe_key"], unique=True)
    op.create_table(
        "social_order_lines",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("product_id", sa.BigInteger(), nullable=True),
        sa.Column("comment_row_id", sa.BigInteger(), nullable=True),
        sa.Column("master_sku_id", sa.BigInteger(), nullable=True),
        sa.Column("code", sa.String(length=16), nullable=True),
        sa.Column("sku", sa.String(length=128), nullable=True),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("external_product_id", sa.String(length=128), nullable=True),
        sa.Column("unit_price", sa.Numeric(), nullable=False),
        sa.Column("requested", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), server_default="0", nullable=False),
        sa.Column("sort_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sort_key", sa.String(length=160), nullable=False),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.ForeignKeyConstraint(
            ["comment_row_id"],
            ["live_comments.id"],
            name=op.f("fk_social_order_lines_comment_row_id_live_comments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["master_sku_id"],
            ["inventory_skus.id"],
            name=op.f("fk_social_order_lines_master_sku_id_inventory_skus"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["marketplace_orders.id"],
            name=op.f("fk_social_order_lines_order_id_marketplace_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["live_session_products.id"],
            name=op.f("fk_social_order_lines_product_id_live_session_products"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["live_sessions.id"],
            name=op.f("fk_social_order_lines_session_id_live_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_social_order_lines")),
    )
    op.create_index(
        "ix_social_order_lines_comment_id", "social_order_lines", ["comment_row_id"], unique=False
    )
    op.create_index(
        "ix_social_order_lines_order_id", "social_order_lines", ["order_id"], unique=False
    )
    op.create_index(
        "ix_social_order_lines_product_queue",
        "social_order_lines",
        ["product_id", "sort_at", "sort_key"],
        unique=False,
        postgresql_where=sa.text("active"),
    )
    # A NOT NULL column with a constant default is a catalog change (no table rewrite).
    op.add_column(
        "marketplace_orders",
        sa.Column("channel", sa.String(length=16), server_default="marketplace", nullable=False),
    )
    op.add_column(
        "marketplace_orders", sa.Column("buyer_external_id", sa.String(length=128), nullable=True)
    )


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_column("marketplace_orders", "buyer_external_id")
    op.drop_column("marketplace_orders", "channel")
    op.drop_index(
        "ix_social_order_lines_product_queue",
        table_name="social_order_lines",
        postgresql_where=sa.text("active"),
    )
    op.drop_index("ix_social_order_lines_order_id", table_name="social_order_lines")
    op.drop_index("ix_social_order_lines_comment_id", table_name="social_order_lines")
    op.drop_table("social_order_lines")
    op.drop_index("uq_social_replies_dedupe_key", table_name="social_replies")
    op.drop_index(
        "ix_social_replies_pending",
        table_name="social_replies",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_index("ix_social_replies_order_id", table_name="social_replies")
    op.drop_table("social_replies")
    op.drop_index(
        "uq_social_orders_open_buyer",
        table_name="social_orders",
        postgresql_where=sa.text("is_open"),
    )
    op.drop_index(op.f("ix_social_orders_connection_id"), table_name="social_orders")
    op.drop_table("social_orders")
    op.drop_table("live_session_products")
    op.drop_index(
        "ix_live_comments_pending", table_name="live_comments", postgresql_where=sa.text("pending")
    )
    op.drop_index("ix_live_comments_session_commented", table_name="live_comments")
    op.drop_table("live_comments")
    op.drop_table("messenger_threads")
    op.drop_index(
        "uq_live_sessions_open_post",
        table_name="live_sessions",
        postgresql_where=sa.text("status = 'open'"),
    )
    op.drop_index("ix_live_sessions_user_id_created_at", table_name="live_sessions")
    op.drop_table("live_sessions")
