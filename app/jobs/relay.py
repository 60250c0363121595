"""The relay: moves committed outbox rows into arq, and re-drives rows whose lease ran out.

Every API process and worker runs one. A commit that wrote rows nudges it (and the request or
job edge awaits one pass, so its jobs are in Redis before it answers); between nudges it polls.
Rows are claimed with `FOR UPDATE SKIP LOCKED`, so several relays never send one row twice,
and each send has its own arq job id (`outbox:{id}:{send}`): arq never refuses a job because
an earlier one of the same row is still kept for `keep_result` seconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus
from redis.exceptions import RedisError
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.jobs.outbox import on_commit_with_jobs
from app.jobs.policy import RetryPolicy
from app.models.job_outbox import JobOutbox

logger = logging.getLogger("app.jobs.relay")

BATCH = 200
# Concurrent sends to Redis within one pass.
SEND_CONCURRENCY = 16
PURGE_EVERY_SECONDS = 60.0


def arq_job_id(row_id: int, send: int) -> str:
    return f"outbox:{row_id}:{send}"


def parse_arq_job_id(job_id: str) -> tuple[int, int] | None:
    """(row id, send number) of an arq job the relay sent; None for any other job."""
    prefix, _, rest = job_id.partition(":")
    row, _, send = rest.partition(":")
    if prefix != "outbox" or not row.isdigit() or not send.isdigit():
        return None
    return int(row), int(send)


class Relay:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: ArqRedis,
        *,
        lease_seconds: float,
        interval_seconds: float,
        keep_done_hours: float,
        max_attempts: int,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.redis = redis
        self.lease = timedelta(seconds=lease_seconds)
        self.interval = interval_seconds
        self.keep_done = timedelta(hours=keep_done_hours)
        self.max_attempts = max_attempts
        # Leases are checked a few times per lease, so a dead worker's job waits at most
        # about 1.2 leases.
        self.redrive_every = min(5.0, lease_seconds / 4)
        self._wake = asyncio.Event()
        self._passes = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], redis: ArqRedis
    ) -> Relay:
        return cls(
            sessionmaker,
            redis,
            lease_seconds=settings.job_lease_seconds,
            interval_seconds=settings.job_relay_interval_seconds,
            keep_done_hours=settings.job_keep_done_hours,
            max_attempts=RetryPolicy.from_tuning(settings.clients).max_attempts,
        )

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Relay:
        self._loop = asyncio.get_running_loop()
        self._unsubscribe = on_commit_with_jobs(self.nudge)
        self._task = asyncio.create_task(self._run(), name="job-outbox-relay")
        return self

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def nudge(self) -> None:
        """Send now rather than at the next poll (called after a commit that wrote rows)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last_redrive = last_purge = 0.0
        failures = 0
        while True:
            self._wake.clear()
            full = False
            try:
                full = await self.flush() >= BATCH
                now = loop.time()
                if now - last_redrive >= self.redrive_every:
                    last_redrive = now
                    await self.redrive_expired()
                if now - last_purge >= PURGE_EVERY_SECONDS:
                    last_purge = now
                    await self.purge_done()
                failures = 0
            except (DBAPIError, RedisError, OSError) as exc:
                failures += 1
                logger.warning(
                    "job relay pass failed; retrying",
                    extra={"error": type(exc).__name__, "failures": failures},
                )
            except Exception:
                failures += 1
                logger.exception("job relay pass failed")
            if full:
                continue  # more rows wait: no pause
            wait = self.interval * min(20, 2**failures) if failures else self.interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    # --- passes ------------------------------------------------------------------------------

    async def flush(self) -> int:
        """One pass: send every due row (up to BATCH); returns how many were sent. A pass
        already running in this process is waited for first, so after this returns every
        row committed before the call is in Redis (or waits for a relay elsewhere)."""
        async with self._passes:
            return await self._send_due()

    async def _send_due(self) -> int:
        async with self.sessionmaker() as session:
            rows = (
                await session.execute(
                    select(JobOutbox.id, JobOutbox.function, JobOutbox.args, JobOutbox.sends)
                    .where(JobOutbox.status == "pending", JobOutbox.not_before <= func.now())
                    .order_by(JobOutbox.id)
                    .limit(BATCH)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            limit = asyncio.Semaphore(SEND_CONCURRENCY)
            unreachable: list[BaseException] = []

            async def send(row: Any) -> int | None:
                async with limit:
                    if unreachable:
                        return None  # Redis is down: the rest stay pending for the next pass
                    try:
                        # None back means this id is already in arq (a pass that sent it died
                        # before its commit): sent either way.
                        await self.redis.enqueue_job(
                            row.function, *row.args, _job_id=arq_job_id(row.id, row.sends + 1)
                        )
                    except (RedisError, OSError) as exc:
                        unreachable.append(exc)
                        return None
                    return int(row.id)

            sent = [i for i in await asyncio.gather(*(send(r) for r in rows)) if i is not None]
            if sent:
                await session.execute(
                    update(JobOutbox)
                    .where(JobOutbox.id.in_(sent))
                    .values(
                        status="sent",
                        sends=JobOutbox.sends + 1,
                        lease_until=func.now() + self.lease,
                    )
                )
            await session.commit()
        if unreachable:
            # After the commit of what did go out; the poll loop backs off on this.
            raise unreachable[0]
        return len(sent)

    async def redrive_expired(self) -> int:
        """Rows whose lease ran out: a sent job that arq no longer holds (Redis lost it, or a
        worker died as it picked it up) is sent again; a started job whose worker stopped
        renewing its lease (killed) is run again, counted as an attempt."""
        redriven = 0
        async with self.sessionmaker() as session:
            rows = (
                await session.execute(
                    select(
                        JobOutbox.id,
                        JobOutbox.status,
                        JobOutbox.sends,
                        JobOutbox.attempts,
                        JobOutbox.dedupe_key,
                        JobOutbox.function,
                    )
                    .where(
                        JobOutbox.status.in_(("sent", "started")),
                        JobOutbox.lease_until < func.now(),
                    )
                    .order_by(JobOutbox.lease_until)
                    .limit(BATCH)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                if row.status == "sent":
                    status = await Job(arq_job_id(row.id, row.sends), self.redis).status()
                    if status in (JobStatus.queued, JobStatus.deferred):
                        # Still waiting its turn in a long queue: not lost.
                        await session.execute(
                            update(JobOutbox)
                            .where(JobOutbox.id == row.id)
                            .values(lease_until=func.now() + self.lease)
                        )
                        continue
                    await session.execute(
                        update(JobOutbox).where(JobOutbox.id == row.id).values(status="pending")
                    )
                elif row.attempts >= self.max_attempts:
                    await session.execute(
                        update(JobOutbox)
                        .where(JobOutbox.id == row.id)
                        .values(
                            status="failed",
                            finished_at=func.now(),
                            last_error=(
                                f"its worker stopped while running it ({row.attempts} attempts)"
                            ),
                        )
                    )
                    logger.error(
                        "job failed: its worker stopped every attempt",
                        extra={"job": row.function, "outbox_id": row.id},
                    )
                else:
                    await back_to_pending(session, row.id, row.dedupe_key)
                redriven += 1
                logger.warning(
                    "job re-driven after its lease ran out",
                    extra={"job": row.function, "outbox_id": row.id, "status": row.status},
                )
            await session.commit()
        return redriven

    async def purge_done(self) -> int:
        async with self.sessionmaker() as session:
            result = await session.execute(
                delete(JobOutbox).where(JobOutbox.finished_at < func.now() - self.keep_done)
            )
            await session.commit()
        return int(getattr(result, "rowcount", 0) or 0)


async def back_to_pending(session: AsyncSession, row_id: int, dedupe_key: str | None) -> bool:
    return await put_back(
        session, row_id, dedupe_key, status="pending", not_before=func.now(), lease_until=None
    )


async def put_back(
    session: AsyncSession, row_id: int, dedupe_key: str | None, **waiting: Any
) -> bool:
    """Put a started row back in line (`waiting`: its new status and times). Its dedupe key
    may meanwhile belong to a newer waiting job (asked for while this one ran): that job does
    the work, this row ends `superseded`, and False is returned."""
    if dedupe_key is None:
        await session.execute(update(JobOutbox).where(JobOutbox.id == row_id).values(**waiting))
        return True
    try:
        async with session.begin_nested():
            await session.execute(update(JobOutbox).where(JobOutbox.id == row_id).values(**waiting))
        return True
    except IntegrityError:
        await session.execute(
            update(JobOutbox)
            .where(JobOutbox.id == row_id)
            .values(status="superseded", finished_at=func.now(), lease_until=None)
        )
        return False
