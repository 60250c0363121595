"""Jobs of live selling: the reply sender per connection and its sweep."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from arq import Retry, cron, func
from sqlalchemy.ext.asyncio import AsyncSession

from app.live import replies, service
from app.worker_context import JobContext, arq_job

# A busy live or sender is retried this soon; the retries are many (each is one query).
BUSY_RETRY_SECONDS = 0.05
BUSY_TRIES = 400


async def _queue_each(
    ctx: JobContext,
    find: Callable[[AsyncSession], Awaitable[list[uuid.UUID]]],
    queue: Callable[[AsyncSession, uuid.UUID], None],
) -> int:
    """A sweep: a job for every id `find` returns, asked for in one transaction."""
    async with ctx["app"].sessionmaker() as session:
        due = await find(session)
        for item in due:
            queue(session, item)
        await session.commit()
    return len(due)


async def send_social_replies(ctx: JobContext, connection_id: str) -> int:
    try:
        return await replies.send_pending(ctx["app"], uuid.UUID(connection_id))
    except replies.SenderBusy:
        raise Retry(defer=BUSY_RETRY_SECONDS * 4) from None


async def sweep_social_replies(ctx: JobContext) -> int:
    """Cron: a reply job for every connection with replies waiting (one lost, or never sent
    because the transaction that queued it ran where no job sender was installed)."""
    return await _queue_each(ctx, replies.due_connections, replies.queue_reply_job)


async def allocate_live_comments(ctx: JobContext, session_id: str) -> int:
    """Place every pending comment of a live, in batches (queued by the webhooks that
    captured them, one job per live)."""
    try:
        return await service.allocate_session(
            ctx["app"].sessionmaker, uuid.UUID(session_id), linger=service.LINGER_SECONDS
        )
    except service.LiveBusy:
        raise Retry(defer=BUSY_RETRY_SECONDS) from None


async def sweep_live_comments(ctx: JobContext) -> int:
    """Cron: an allocation job for every live with comments left pending (a lost job). The
    job's dedupe key makes a sweep that finds the live again ask for nothing more."""
    return await _queue_each(ctx, service.sessions_with_pending, service.queue_allocation)


# keep_result=0: a finished run must not block the next one with the same (coalescing) id.
FUNCTIONS: list[Any] = [
    func(arq_job(send_social_replies), name=replies.REPLY_JOB, keep_result=0, max_tries=BUSY_TRIES),
    func(
        arq_job(allocate_live_comments),
        name=service.ALLOCATE_JOB,
        keep_result=0,
        max_tries=BUSY_TRIES,
    ),
]
CRON_JOBS: list[Any] = [
    cron(arq_job(sweep_social_replies), second=set(range(2, 60, 5)), unique=True, timeout=60),
    cron(arq_job(sweep_live_comments), second=set(range(1, 60, 2)), unique=True, timeout=60),
]
