from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Identity, Index, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base

# pending: committed, not yet in arq | sent: in arq, not started | started: running (leased)
# finished | failed (permanent error or attempts used up) | superseded (a newer job with the
# same dedupe key took its place before it could be re-driven)
JOB_STATUSES = ("pending", "sent", "started", "finished", "failed", "superseded")
WAITING = ("pending", "sent")


class JobOutbox(Base):
    """A job, written in the transaction of the state it acts on (the transactional outbox):
    it exists exactly when that transaction committed. The relay hands it to arq; the job
    wrapper leases, finishes or reschedules it."""

    __tablename__ = "job_outbox"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in JOB_STATUSES) + ")", name="status"
        ),
        # Coalescing: one waiting (not yet started) job per key. A started job frees its key,
        # so work arriving while it runs gets a job of its own.
        Index(
            "uq_job_outbox_dedupe_key_waiting",
            "dedupe_key",
            unique=True,
            postgresql_where=text("status IN ('pending', 'sent')"),
        ),
        # The relay's two scans: due rows to send, and leases that ran out.
        Index("ix_job_outbox_due", "not_before", "id", postgresql_where=text("status = 'pending'")),
        Index(
            "ix_job_outbox_leased",
            "lease_until",
            postgresql_where=text("status IN ('sent', 'started')"),
        ),
        Index(
            "ix_job_outbox_done", "finished_at", postgresql_where=text("finished_at IS NOT NULL")
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    function: Mapped[str] = mapped_column(String(100))
    args: Mapped[list[str | int]] = mapped_column(JSONB)
    dedupe_key: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    not_before: Mapped[datetime] = mapped_column(server_default=func.now())
    # Handed to arq this many times; the arq job id is `outbox:{id}:{sends}`, new per send.
    sends: Mapped[int] = mapped_column(server_default="0")
    # Started this many times (the retry policy's attempt number).
    attempts: Mapped[int] = mapped_column(server_default="0")
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
