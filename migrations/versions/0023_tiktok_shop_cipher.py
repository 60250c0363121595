"""TikTok Shop: the shop cipher kept on the connection (pasted or from the authorization)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 09:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.add_column(
        "marketplace_connections", sa.Column("shop_cipher", sa.String(length=256), nullable=True)
    )


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_column("marketplace_connections", "shop_cipher")
