"""stock pushes: a claim lease per listing and the time a failed or drifted push is retried

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 01:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.add_column(
        "marketplace_stock_levels",
        sa.Column("push_lease_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "marketplace_stock_levels",
        sa.Column("push_retry_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_marketplace_stock_levels_push_retry_at",
        "marketplace_stock_levels",
        ["push_retry_at"],
        unique=False,
        postgresql_where=sa.text("push_retry_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_index(
        "ix_marketplace_stock_levels_push_retry_at",
        table_name="marketplace_stock_levels",
        postgresql_where=sa.text("push_retry_at IS NOT NULL"),
    )
    op.drop_column("marketplace_stock_levels", "push_retry_at")
    op.drop_column("marketplace_stock_levels", "push_lease_until")
