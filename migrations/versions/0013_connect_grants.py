"""connect grants: what a finished authorization flow granted, until its user completes it

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 01:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.create_table(
        "marketplace_connect_grants",
        sa.Column("grant_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("platform_code", sa.String(32), nullable=False),
        sa.Column("payload_encrypted", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("grant_hash", name="pk_marketplace_connect_grants"),
    )
    op.create_index(
        "ix_marketplace_connect_grants_expires_at",
        "marketplace_connect_grants",
        ["expires_at"],
    )


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_index(
        "ix_marketplace_connect_grants_expires_at", table_name="marketplace_connect_grants"
    )
    op.drop_table("marketplace_connect_grants")
