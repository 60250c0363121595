"""low-stock alerts: a master SKU's threshold and whether its alert has fired

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 02:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.add_column("inventory_skus", sa.Column("low_stock_at", sa.Integer(), nullable=True))
    op.add_column(
        "inventory_skus",
        sa.Column("low_stock_alerted_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_check_constraint(
        op.f("ck_inventory_skus_low_stock_at_not_negative"), "inventory_skus", "low_stock_at >= 0"
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("ck_inventory_skus_low_stock_at_not_negative"), "inventory_skus", type_="check"
    )
    op.drop_column("inventory_skus", "low_stock_alerted_at")
    op.drop_column("inventory_skus", "low_stock_at")
