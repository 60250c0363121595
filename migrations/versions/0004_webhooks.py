"""webhooks: one inbox row per event per connection, its owner, and the sweeper's index

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    # Rows stored before this revision belong to no user; the inbox starts empty in practice.
    op.execute("DELETE FROM marketplace_webhooks")
    op.add_column("marketplace_webhooks", sa.Column("user_id", sa.String(128), nullable=False))
    op.add_column(
        "marketplace_webhooks",
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.drop_constraint(
        "uq_marketplace_webhooks_platform_code_dedupe_key", "marketplace_webhooks", type_="unique"
    )
    op.create_unique_constraint(
        "uq_marketplace_webhooks_connection_id_dedupe_key",
        "marketplace_webhooks",
        ["connection_id", "dedupe_key"],
    )
    op.drop_index("ix_marketplace_webhooks_status_received", table_name="marketplace_webhooks")
    op.create_index("ix_marketplace_webhooks_user_id_id", "marketplace_webhooks", ["user_id", "id"])
    op.create_index(
        "ix_marketplace_webhooks_pending",
        "marketplace_webhooks",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'received'"),
    )
    op.create_index(
        "ix_marketplace_connections_platform_shop",
        "marketplace_connections",
        ["platform_code", "shop_id"],
    )


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_index("ix_marketplace_connections_platform_shop", table_name="marketplace_connections")
    op.drop_index("ix_marketplace_webhooks_pending", table_name="marketplace_webhooks")
    op.drop_index("ix_marketplace_webhooks_user_id_id", table_name="marketplace_webhooks")
    op.create_index(
        "ix_marketplace_webhooks_status_received",
        "marketplace_webhooks",
        ["status", "received_at"],
    )
    op.drop_constraint(
        "uq_marketplace_webhooks_connection_id_dedupe_key", "marketplace_webhooks", type_="unique"
    )
    op.execute("DELETE FROM marketplace_webhooks")
    op.create_unique_constraint(
        "uq_marketplace_webhooks_platform_code_dedupe_key",
        "marketplace_webhooks",
        ["platform_code", "dedupe_key"],
    )
    op.drop_column("marketplace_webhooks", "next_attempt_at")
    op.drop_column("marketplace_webhooks", "user_id")
