"""What every job gets (the typed `JobContext` around the process's `WorkerContext`), and the
one wrapper every job function runs through.

The wrapper ties an arq job to its outbox row: it marks the row started with a lease that it
renews while the job runs, finished when the job returns, and on failure asks the retry policy
whether to put the row back in line (transient and rate-limited failures, with back-off and the
platform's Retry-After, up to the attempt cap) or to end it failed with the error's message.
A job that raises arq's `Retry(defer=...)` is put back after that delay, up to its function's
`max_tries`. Jobs not sent by the relay (cron jobs, a hand-queued job) run as they are."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NotRequired, TypedDict, cast

import httpx
from arq.connections import ArqRedis
from arq.typing import WorkerCoroutine
from arq.worker import Function, Retry, func
from redis.exceptions import RedisError
from sqlalchemy import func as sql
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.crypto import CredentialCipher
from app.db import Database
from app.jobs.outbox import commits_with_jobs
from app.jobs.policy import RetryPolicy
from app.jobs.relay import Relay, arq_job_id, parse_arq_job_id, put_back
from app.models.job_outbox import JobOutbox
from app.platforms.http import RateLimiter
from app.platforms.quota import RedisRateLimiter, app_quota_key
from app.platforms.registry import PlatformGateway
from app.uow import UnitOfWork, unit_of_work

logger = logging.getLogger("app.jobs")

MAX_ERROR_CHARS = 2000


@dataclass
class WorkerContext:
    settings: Settings
    database: Database
    cipher: CredentialCipher
    http: httpx.AsyncClient
    gateway: PlatformGateway
    redis: ArqRedis | None = None
    # This process's outbox relay (set by the worker at start-up).
    relay: Relay | None = None
    # One call budget per connection in this process, shared by every job that calls it.
    limiters: dict[uuid.UUID, RateLimiter] = field(default_factory=dict)
    # Set when the worker is told to stop: running syncs end after their current batch.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def limiter_for(
        self, connection_id: uuid.UUID, *, platform: str | None = None, app_key: str | None = None
    ) -> RateLimiter:
        """The connection's call budget: shared by every process through Redis when the app is
        known (its own local bucket takes over while Redis is down)."""
        limiter = self.limiters.get(connection_id)
        if limiter is None:
            tuning = self.settings.clients
            if self.redis is not None and platform and app_key:
                limiter = RedisRateLimiter(
                    self.redis,
                    app=app_quota_key(platform, app_key),
                    connection_id=connection_id,
                    calls_per_second=tuning.calls_per_second,
                    app_calls_per_second=tuning.app_calls_per_second or 5 * tuning.calls_per_second,
                )
            else:
                limiter = RateLimiter(tuning.calls_per_second)
            self.limiters[connection_id] = limiter
        return limiter

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        return self.database.sessionmaker

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy.from_tuning(self.settings.clients)

    @classmethod
    def create(cls, settings: Settings, redis: ArqRedis | None = None) -> WorkerContext:
        http = httpx.AsyncClient(timeout=settings.clients.timeout_seconds)
        return cls(
            settings=settings,
            database=Database(settings),
            cipher=CredentialCipher(
                [k.get_secret_value() for k in settings.credentials_encryption_keys]
            ),
            http=http,
            gateway=PlatformGateway(settings, http_client=http),
            redis=redis,
        )

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        """The job edge's transaction: commits at the end; the jobs it asked for are outbox
        rows of that commit (no Redis check: the outbox holds them until Redis is back)."""
        async for uow in unit_of_work(self.sessionmaker, None, relay=self.relay):
            yield uow

    async def close(self) -> None:
        await self.http.aclose()
        await self.database.dispose()


class JobContext(TypedDict):
    """What arq hands every job: our context under "app", plus arq's own keys. `job_try` is
    the outbox row's attempt number (1 on the first run) for jobs the relay sent."""

    app: WorkerContext
    redis: ArqRedis
    job_id: str
    job_try: int
    # The job's outbox row, when the relay sent it.
    outbox_id: NotRequired[int]


def arq_job(function: Any) -> WorkerCoroutine:
    """A job taking the typed JobContext, as arq's typing wants it (a plain dict context)."""
    return cast(WorkerCoroutine, function)


# --- the job wrapper ---------------------------------------------------------------------------


def outbox_functions(functions: Sequence[Any]) -> list[Function]:
    """Every job function of the worker, each run through `outbox_job`."""
    return [outbox_job(func(f)) for f in functions]


def outbox_job(function: Function) -> Function:
    inner = function.coroutine
    max_tries = function.max_tries

    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        ids = parse_arq_job_id(str(ctx.get("job_id", "")))
        if ids is None:
            return await inner(ctx, *args, **kwargs)
        return await _run_outbox_job(
            cast(JobContext, ctx), ids, function.name, inner, max_tries, args, kwargs
        )

    run.__qualname__ = getattr(inner, "__qualname__", function.name)
    return Function(
        name=function.name,
        coroutine=arq_job(run),
        timeout_s=function.timeout_s,
        keep_result_s=function.keep_result_s,
        keep_result_forever=function.keep_result_forever,
        max_tries=function.max_tries,
    )


async def _run_outbox_job(
    ctx: JobContext,
    ids: tuple[int, int],
    name: str,
    inner: WorkerCoroutine,
    max_tries: int | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    wc = ctx["app"]
    row_id, send = ids
    lease = wc.settings.job_lease_seconds
    claimed = await _claim(wc, row_id, send, lease)
    if claimed is None:
        # Re-driven meanwhile (a newer send of the row exists) or already done.
        logger.info("outbox job skipped: not this send's turn", extra={"outbox_id": row_id})
        return None
    attempt, dedupe_key = claimed
    ctx["job_try"] = attempt
    ctx["outbox_id"] = row_id
    commits_before = commits_with_jobs()
    renewer = asyncio.create_task(_renew_lease(wc, row_id, send, lease))
    try:
        result = await inner(cast(dict[Any, Any], ctx), *args, **kwargs)
    except asyncio.CancelledError:
        # Worker stopping or job timeout: let the relay re-drive it now, not after the lease.
        renewer.cancel()
        with contextlib.suppress(Exception):
            await asyncio.shield(_release(wc, row_id, send))
        raise
    except Retry as exc:
        renewer.cancel()
        delay = (exc.defer_score or 0) / 1000
        if attempt >= (max_tries or wc.retry_policy.max_attempts):
            await _fail(wc, row_id, send, f"gave up after {attempt} tries")
            logger.error("job gave up after its last try", extra={"job": name, "attempt": attempt})
            return None
        await _reschedule(ctx, (row_id, send), name, args, dedupe_key, delay, None)
        return None
    except Exception as exc:
        renewer.cancel()
        policy = wc.retry_policy
        message = (str(exc) or type(exc).__name__)[:MAX_ERROR_CHARS]
        if policy.should_retry(exc, attempt):
            delay = policy.delay_for(exc, attempt)
            logger.warning(
                "job failed; retrying",
                extra={"job": name, "attempt": attempt, "retry_in_seconds": round(delay, 3)},
            )
            await _reschedule(ctx, (row_id, send), name, args, dedupe_key, delay, message)
            return None
        await _fail(wc, row_id, send, message)
        raise
    finally:
        renewer.cancel()
        await asyncio.gather(renewer, return_exceptions=True)
    await _finish(wc, row_id, send)
    if wc.relay is not None and commits_with_jobs() != commits_before:
        # The jobs this one asked for are in Redis before it ends (a burst worker stops
        # when the queue is empty, and the next step should not wait for a poll).
        with contextlib.suppress(Exception):
            await wc.relay.flush()
    return result


def _ours(row_id: int, send: int) -> Any:
    return (JobOutbox.id == row_id) & (JobOutbox.sends == send) & (JobOutbox.status == "started")


def _lease(seconds: float) -> Any:
    return sql.now() + timedelta(seconds=seconds)


async def _claim(
    wc: WorkerContext, row_id: int, send: int, lease: float
) -> tuple[int, str | None] | None:
    async with wc.sessionmaker() as session:
        # Lock by id first: a relay that has just sent this job may not have committed the
        # row's `sent` yet; waiting for its lock reads the row as that relay left it.
        current = (
            await session.execute(
                select(JobOutbox.status, JobOutbox.sends)
                .where(JobOutbox.id == row_id)
                .with_for_update()
            )
        ).first()
        if current is None or (current.status, current.sends) != ("sent", send):
            return None
        row = (
            await session.execute(
                update(JobOutbox)
                .where(JobOutbox.id == row_id)
                .values(
                    status="started",
                    attempts=JobOutbox.attempts + 1,
                    started_at=sql.now(),
                    lease_until=_lease(lease),
                )
                .returning(JobOutbox.attempts, JobOutbox.dedupe_key)
            )
        ).one()
        await session.commit()
    return int(row.attempts), row.dedupe_key


async def _renew_lease(wc: WorkerContext, row_id: int, send: int, lease: float) -> None:
    while True:
        await asyncio.sleep(lease / 3)
        with contextlib.suppress(DBAPIError, OSError):
            async with wc.sessionmaker() as session:
                await session.execute(
                    update(JobOutbox).where(_ours(row_id, send)).values(lease_until=_lease(lease))
                )
                await session.commit()


async def _finish(wc: WorkerContext, row_id: int, send: int) -> None:
    await _end(wc, row_id, send, "finished", None)


async def _fail(wc: WorkerContext, row_id: int, send: int, message: str) -> None:
    await _end(wc, row_id, send, "failed", message)


async def _end(wc: WorkerContext, row_id: int, send: int, status: str, error: str | None) -> None:
    async with wc.sessionmaker() as session:
        await session.execute(
            update(JobOutbox)
            .where(_ours(row_id, send))
            .values(status=status, finished_at=sql.now(), lease_until=None, last_error=error)
        )
        await session.commit()


async def _reschedule(
    ctx: JobContext,
    ids: tuple[int, int],
    name: str,
    args: tuple[Any, ...],
    dedupe_key: str | None,
    delay: float,
    message: str | None,
) -> None:
    """Run the row again after `delay`: sent to arq at once as a deferred job under its next
    id (so the wait is exact, and a burst worker waits for it), or, with Redis unreachable,
    left pending for a relay to send once it is due."""
    wc = ctx["app"]
    row_id, send = ids
    wait = timedelta(seconds=delay)
    async with wc.sessionmaker() as session:
        # Only while the row is still this send's (not re-driven meanwhile).
        still_ours = await session.scalar(
            select(JobOutbox.id).where(_ours(row_id, send)).with_for_update()
        )
        if still_ours is None:
            return
        queued = await put_back(
            session,
            row_id,
            dedupe_key,
            status="sent",
            sends=send + 1,
            not_before=sql.now() + wait,
            lease_until=sql.now() + wait + timedelta(seconds=wc.settings.job_lease_seconds),
            last_error=message,
        )
        if queued:
            try:
                await ctx["redis"].enqueue_job(
                    name, *args, _job_id=arq_job_id(row_id, send + 1), _defer_by=wait
                )
            except (RedisError, OSError):
                await session.execute(
                    update(JobOutbox)
                    .where(JobOutbox.id == row_id)
                    .values(status="pending", lease_until=None)
                )
        await session.commit()


async def _release(wc: WorkerContext, row_id: int, send: int) -> None:
    async with wc.sessionmaker() as session:
        await session.execute(
            update(JobOutbox).where(_ours(row_id, send)).values(lease_until=sql.now())
        )
        await session.commit()
