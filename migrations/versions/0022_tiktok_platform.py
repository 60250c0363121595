"""TikTok Shop as a platform (issue 19)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 02:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.execute(
        "INSERT INTO marketplace_platforms (code, name, is_active) "
        "VALUES ('tiktok', 'TikTok Shop', true) ON CONFLICT (code) DO NOTHING"
    )


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.execute("DELETE FROM marketplace_platforms WHERE code = 'tiktok'")
