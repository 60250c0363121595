"""fulfillment: one row per shipment asked for an order or package

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 01:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.create_table(
        "order_fulfillments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.Column("platform_code", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="requested", nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("package_number", sa.String(length=255), nullable=True),
        sa.Column("package_id", sa.String(length=255), nullable=True),
        sa.Column("tracking_number", sa.String(length=128), nullable=True),
        sa.Column("carrier", sa.String(length=128), nullable=True),
        sa.Column("address_id", sa.String(length=64), nullable=True),
        sa.Column("pickup_time_id", sa.String(length=64), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("tracking_reads", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["marketplace_connections.id"],
            name=op.f("fk_order_fulfillments_connection_id_marketplace_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["marketplace_orders.id"],
            name=op.f("fk_order_fulfillments_order_id_marketplace_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_fulfillments")),
        sa.UniqueConstraint(
            "user_id", "idempotency_key", name=op.f("uq_order_fulfillments_user_id_idempotency_key")
        ),
    )
    op.create_index(
        "uq_order_fulfillments_one_running",
        "order_fulfillments",
        ["order_id", sa.text("coalesce(package_number, '')")],
        unique=True,
        postgresql_where=sa.text("status = 'requested'"),
    )
    op.create_index(
        "ix_order_fulfillments_user_created",
        "order_fulfillments",
        ["user_id", "created_at", "id"],
    )
    op.create_index("ix_order_fulfillments_order", "order_fulfillments", ["order_id", "created_at"])
    op.create_index(
        "ix_order_fulfillments_waiting",
        "order_fulfillments",
        ["connection_id", "created_at"],
        postgresql_where=sa.text("status = 'requested'"),
    )


def downgrade() -> None:
    op.drop_table("order_fulfillments")
