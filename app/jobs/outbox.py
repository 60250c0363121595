"""The one way to ask for a job: `enqueue(session, ...)` inside the transaction the job belongs
to. The job exists only if that transaction commits (a rolled-back savepoint drops its own jobs).

Interim implementation on the after-commit sender; the table-backed outbox and relay replace the
internals behind this same call."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.inventory.outbox import defer_job


def enqueue(
    session: AsyncSession,
    function: str,
    *args: str,
    dedupe_key: str | None = None,
    defer_seconds: float = 0.0,
) -> None:
    """Queue `function(*args)` to run after `session`'s transaction commits.

    `dedupe_key`: while a job with the same key is queued and not yet started, asking again is
    a no-op (coalescing). Leave it out unless a duplicate would be wrong.
    `defer_seconds`: do not start before this many seconds after commit."""
    defer_job(
        session,
        function,
        *args,
        job_id=dedupe_key or f"{function}:{uuid.uuid4().hex}",
        defer_seconds=defer_seconds,
    )
