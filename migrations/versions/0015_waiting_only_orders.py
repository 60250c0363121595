"""live and Messenger orders whose every line waits: `waiting_only`

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 01:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    # A NOT NULL column with a constant default is a catalog change (no table rewrite).
    op.add_column(
        "marketplace_orders",
        sa.Column("waiting_only", sa.Boolean(), server_default="false", nullable=False),
    )
    # Open live and Messenger orders that hold nothing and wait for something (from
    # social_orders: the few orders this service owns, not a scan of every order).
    op.execute(
        "UPDATE marketplace_orders o SET waiting_only = true FROM social_orders s "
        "WHERE s.order_id = o.id AND o.status = 'unpaid' "
        "AND NOT EXISTS (SELECT 1 FROM social_order_lines l WHERE l.order_id = o.id "
        "AND l.active AND l.reserved > 0) "
        "AND EXISTS (SELECT 1 FROM social_order_lines l WHERE l.order_id = o.id "
        "AND l.active AND l.requested > l.reserved)"
    )


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_column("marketplace_orders", "waiting_only")
