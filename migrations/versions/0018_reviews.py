"""product reviews of Shopee and Lazada shops and the seller's replies (one row per
connection and platform review id)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 02:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.create_table(
        "marketplace_reviews",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("platform_code", sa.String(length=32), nullable=False),
        sa.Column("external_review_id", sa.String(length=128), nullable=False),
        sa.Column("external_product_id", sa.String(length=128), nullable=False),
        sa.Column("external_variation_id", sa.String(length=128), nullable=True),
        sa.Column("external_order_id", sa.String(length=128), nullable=True),
        sa.Column("listing_id", sa.BigInteger(), nullable=True),
        sa.Column("product_name", sa.String(length=512), nullable=True),
        sa.Column("rating", sa.SmallInteger(), nullable=True),
        sa.Column("text", sa.Text(), server_default="", nullable=False),
        sa.Column("buyer_name", sa.String(length=255), nullable=True),
        sa.Column("review_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("can_reply", sa.Boolean(), nullable=True),
        sa.Column("reply_text", sa.Text(), nullable=True),
        sa.Column("reply_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reply_claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
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
            name=op.f("fk_marketplace_reviews_connection_id_marketplace_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["listing_id"],
            ["marketplace_stock_levels.id"],
            name=op.f("fk_marketplace_reviews_listing_id_marketplace_stock_levels"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_marketplace_reviews")),
        sa.UniqueConstraint(
            "connection_id",
            "external_review_id",
            name=op.f("uq_marketplace_reviews_connection_id_external_review_id"),
        ),
    )
    op.create_index(
        op.f("ix_marketplace_reviews_listing_id"),
        "marketplace_reviews",
        ["listing_id"],
        unique=False,
    )
    op.create_index(
        "ix_marketplace_reviews_user_created",
        "marketplace_reviews",
        ["user_id", "review_created_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_index("ix_marketplace_reviews_user_created", table_name="marketplace_reviews")
    op.drop_index(op.f("ix_marketplace_reviews_listing_id"), table_name="marketplace_reviews")
    op.drop_table("marketplace_reviews")
