"""the job runtime: the transactional job outbox; alert deliveries are claimed with a lease

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 01:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.create_table(
        "job_outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("function", sa.String(length=100), nullable=False),
        sa.Column("args", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("dedupe_key", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column(
            "not_before",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("sends", sa.Integer(), server_default="0", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'started', 'finished', 'failed', 'superseded')",
            name=op.f("ck_job_outbox_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_outbox")),
    )
    op.create_index(
        "uq_job_outbox_dedupe_key_waiting",
        "job_outbox",
        ["dedupe_key"],
        unique=True,
        postgresql_where=sa.text("status IN ('pending', 'sent')"),
    )
    op.create_index(
        "ix_job_outbox_due",
        "job_outbox",
        ["not_before", "id"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_job_outbox_leased",
        "job_outbox",
        ["lease_until"],
        postgresql_where=sa.text("status IN ('sent', 'started')"),
    )
    op.create_index(
        "ix_job_outbox_done",
        "job_outbox",
        ["finished_at"],
        postgresql_where=sa.text("finished_at IS NOT NULL"),
    )
    op.add_column(
        "marketplace_alerts",
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_column("marketplace_alerts", "claimed_until")
    op.drop_table("job_outbox")
