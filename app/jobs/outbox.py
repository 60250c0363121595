"""The one way to ask for a job: `enqueue(session, ...)` inside the transaction the job belongs
to. The job is a `job_outbox` row of that transaction, so it exists exactly when the
transaction commits; a savepoint rolled back drops only the jobs asked for inside it.

`enqueue` is synchronous (callers do not await it): it adds the row to the session, and the
session's flush writes it with `INSERT ... ON CONFLICT DO NOTHING`, which is how a dedupe key
coalesces with a job of the same key that has not started yet. After a commit that wrote
rows, the relays of this process are nudged to hand them to arq at once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import event, func, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from app.models.job_outbox import JobOutbox

_WRITTEN = "omni_job_outbox_written"


class _Commits:
    """Commits that wrote outbox rows in this process (a job compares it before and after
    it runs, to send what it asked for before it ends) and who to nudge after each."""

    count = 0
    listeners: list[Callable[[], None]] = []


def enqueue(
    session: AsyncSession,
    function: str,
    *args: str | int,
    dedupe_key: str | None = None,
    defer_seconds: float = 0.0,
) -> None:
    """Queue `function(*args)` to run once `session`'s transaction commits. Arguments are ids
    (strings, or integers for integer keys): the job reloads what it needs.

        `dedupe_key`: while a job with the same key is waiting (queued, not yet started), asking
        again is a no-op. Leave it out unless a duplicate would be wrong.
        `defer_seconds`: do not start before this many seconds from now."""
    session.add(
        JobOutbox(
            function=function,
            args=list(args),
            dedupe_key=dedupe_key[:255] if dedupe_key else None,
            # Not `now()`: that is the transaction's start, and a long one would shorten it.
            not_before=func.clock_timestamp() + timedelta(seconds=max(0.0, defer_seconds)),
        )
    )


def has_new_jobs(session: AsyncSession) -> bool:
    """Whether this transaction asked for jobs (written or still to be flushed)."""
    return bool(session.info.get(_WRITTEN)) or any(
        isinstance(obj, JobOutbox) for obj in session.new
    )


def commits_with_jobs() -> int:
    return _Commits.count


def on_commit_with_jobs(listener: Callable[[], None]) -> Callable[[], None]:
    """Call `listener` after every commit in this process that wrote outbox rows (the relay's
    nudge); returns the function that removes it."""
    _Commits.listeners.append(listener)
    return lambda: _Commits.listeners.remove(listener)


@event.listens_for(Session, "before_flush")
def _write_outbox_rows(session: Session, flush_context: Any, instances: Any) -> None:
    jobs = [obj for obj in session.new if isinstance(obj, JobOutbox)]
    if not jobs:
        return
    for job in jobs:
        session.expunge(job)
    rows = [
        {
            "function": job.function,
            "args": job.args,
            "dedupe_key": job.dedupe_key,
            "not_before": job.not_before,
        }
        for job in jobs
    ]
    session.execute(
        insert(JobOutbox)
        .values(rows)
        .on_conflict_do_nothing(
            index_elements=[JobOutbox.dedupe_key],
            index_where=text("status IN ('pending', 'sent')"),
        )
    )
    session.info[_WRITTEN] = True


@event.listens_for(Session, "after_commit")
def _nudge_after_commit(session: Session) -> None:
    if not session.info.pop(_WRITTEN, False):
        return
    _Commits.count += 1
    for listener in list(_Commits.listeners):
        listener()


@event.listens_for(Session, "after_transaction_end")
def _forget_after_rollback(session: Session, transaction: SessionTransaction) -> None:
    # Only the outermost transaction: a savepoint rolled back leaves the outer one's rows.
    if transaction.parent is None:
        session.info.pop(_WRITTEN, None)
