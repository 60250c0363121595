"""Jobs asked for inside someone else's transaction (order ingest runs in the sync's and the
webhook's), sent only once that transaction commits and dropped if it rolls back.

The ingest path gets a bare session, not a unit of work, so the jobs ride on `session.info`
and a Session `after_commit` hook sends them through the Redis installed for this process.
Sending is best effort: the push state is in the database, and the sweep cron re-queues any
listing left pending, so a lost send delays a push and never loses it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from arq.connections import ArqRedis
from redis.exceptions import RedisError
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

logger = logging.getLogger("app.inventory.outbox")

_INFO_KEY = "omni_after_commit_jobs"


@dataclass(frozen=True, slots=True)
class DeferredJob:
    function: str
    args: tuple[str, ...]
    job_id: str
    defer_seconds: float


class _Sender:
    redis: ArqRedis | None = None
    tasks: set[asyncio.Task[None]] = set()


def install_job_sender(redis: ArqRedis | None) -> None:
    """Where this process sends after-commit jobs (the worker's and the API's Redis)."""
    _Sender.redis = redis


def defer_job(
    session: AsyncSession,
    function: str,
    *args: str,
    job_id: str,
    defer_seconds: float = 0.0,
) -> None:
    jobs: dict[str, DeferredJob] = session.info.setdefault(_INFO_KEY, {})
    jobs[job_id] = DeferredJob(function, args, job_id, defer_seconds)


def take_jobs(session: AsyncSession) -> list[DeferredJob]:
    """The jobs queued on `session`, removed from it (for callers that send them themselves)."""
    jobs: dict[str, DeferredJob] = session.info.pop(_INFO_KEY, {})
    return list(jobs.values())


async def send_jobs(redis: ArqRedis | None, jobs: list[DeferredJob]) -> None:
    if redis is None:
        return
    for job in jobs:
        try:
            # The job id coalesces: while one is queued, asking again is a no-op.
            await redis.enqueue_job(
                job.function, *job.args, _job_id=job.job_id, _defer_by=job.defer_seconds or None
            )
        except (RedisError, OSError):
            logger.warning("job not sent; the sweep re-queues it", extra={"job": job.function})


@event.listens_for(Session, "after_commit")
def _send_after_commit(session: Session) -> None:
    jobs: dict[str, DeferredJob] | None = session.info.pop(_INFO_KEY, None)
    if not jobs or _Sender.redis is None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    task = loop.create_task(send_jobs(_Sender.redis, list(jobs.values())))
    _Sender.tasks.add(task)
    task.add_done_callback(_Sender.tasks.discard)


@event.listens_for(Session, "after_rollback")
def _drop_after_rollback(session: Session) -> None:
    session.info.pop(_INFO_KEY, None)
