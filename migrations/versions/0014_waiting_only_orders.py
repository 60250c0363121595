"""live and Messenger orders whose every line waits: `waiting_only`

Revision ID: 0014
Revises: 0010
Create Date: 2026-12-07 01:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    # A NOT NULL column with a constant default is a catalog change (no table rewrite).
    op.add_column(
        "marketplace_orders",
        sa.Column("waiting_only", sa.Boolean(), server_default="false", nullable=False),
    )


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_column("marketplace_orders", "waiting_only")
