"""exactly-once sync: failed orders retried by id; when each connection syncs next

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 21:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.create_table(
        "marketplace_failed_orders",
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.Column("external_order_id", sa.String(length=128), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "first_failed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "last_failed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["marketplace_connections.id"],
            name=op.f("fk_marketplace_failed_orders_connection_id_marketplace_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "connection_id", "external_order_id", name=op.f("pk_marketplace_failed_orders")
        ),
    )

    op.add_column(
        "marketplace_connections",
        sa.Column("next_sync_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        op.f("ix_marketplace_connections_next_sync_at"),
        "marketplace_connections",
        ["next_sync_at"],
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_marketplace_connections_next_sync_at"), table_name="marketplace_connections"
    )
    op.drop_column("marketplace_connections", "next_sync_at")
    op.drop_table("marketplace_failed_orders")
