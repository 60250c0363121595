"""webhooks: the drain claims a connection's waiting events, oldest first

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 01:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.create_index(
        "ix_marketplace_webhooks_connection_waiting",
        "marketplace_webhooks",
        ["connection_id", "id"],
        postgresql_where=sa.text("status = 'received'"),
    )


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_index("ix_marketplace_webhooks_connection_waiting", table_name="marketplace_webhooks")
