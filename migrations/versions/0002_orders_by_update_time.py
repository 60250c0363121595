"""index orders by update time, for sort=updatedAt pulls

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 00:56:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    # CONCURRENTLY: a shop with millions of orders keeps syncing while the index builds.
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_marketplace_orders_user_updated",
            "marketplace_orders",
            ["user_id", "order_updated_at", "id"],
            unique=False,
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_marketplace_orders_user_updated",
            table_name="marketplace_orders",
            postgresql_concurrently=True,
            if_exists=True,
        )
