"""connect flows: a connection's country, and the single-use states of authorization flows

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-02 22:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
# 0006 is the alerts migration; 0007 (products and stock) currently revises this one.
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    # Nullable with no default: a metadata-only change, no table rewrite.
    op.add_column("marketplace_connections", sa.Column("country", sa.String(2), nullable=True))
    op.create_table(
        "marketplace_connect_states",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("platform_code", sa.String(32), nullable=False),
        sa.Column("redirect_url", sa.Text(), nullable=True),
        sa.Column("callback_url", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_marketplace_connect_states"),
    )
    op.create_index(
        "ix_marketplace_connect_states_expires_at",
        "marketplace_connect_states",
        ["expires_at"],
    )


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_index(
        "ix_marketplace_connect_states_expires_at", table_name="marketplace_connect_states"
    )
    op.drop_table("marketplace_connect_states")
    op.drop_column("marketplace_connections", "country")
