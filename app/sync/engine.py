"""The order sync pipeline: list and fetch pages (the client), normalize (the client's mapper),
upsert in batches, and save progress after every committed batch so a dead run resumes.

Exactly once: an order that could not be read or stored is kept in `marketplace_failed_orders`
(in the same transaction as the batch) and fetched by id by every later sync until it is
stored, so the high-water mark never has to wait for it and never skips it. The mark itself
only moves to update times the platform returned and that were stored."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts import service as alerts
from app.config import Settings
from app.connections import repository as connections
from app.connections.credentials import connection_client
from app.errors import is_database_unavailable
from app.jobs.outbox import enqueue
from app.logging import hide_statement_values
from app.metrics import service as metrics
from app.models import MarketplaceConnection, MarketplaceSyncLog
from app.models.enums import ConnectionStatus, SyncStatus, SyncTrigger
from app.orders.ingest import IngestResult, upsert_orders
from app.platforms.base import MarketplaceClient, OrderFailure, OrderPage
from app.platforms.errors import MarketplaceError
from app.platforms.types import NormalizedOrder, PlatformCode
from app.sync import repository
from app.sync.repository import connection_lock_key
from app.sync.service import SYNC_JOB, sync_job_key
from app.worker_context import WorkerContext

logger = logging.getLogger("app.sync")

# Pages fetched ahead of the writer: enough to overlap network and database, small enough
# that memory stays flat however large the shop is.
PAGES_AHEAD = 4
# At most this many fetched pages go into one transaction.
WRITE_BATCH_PAGES = 4
MAX_FAILURES_LISTED = 20
# Failed orders re-read by id per run (oldest first), in calls of this size.
RETRY_PER_RUN = 500
RETRY_BATCH = 50
INTERRUPTED = "interrupted"
NOT_RETURNED = "The platform did not return this order when it was asked for it by id"


@dataclass
class Progress:
    fetched: int = 0
    result: IngestResult = field(default_factory=IngestResult)
    failed: int = 0
    pages: int = 0
    events: dict[str, Any] = field(default_factory=dict)
    # The latest platform update time among the orders this run stored.
    max_stored: datetime | None = None
    # Messages of orders the client skipped, by id (the client reports them as events).
    skipped: dict[str, str] = field(default_factory=dict)

    @classmethod
    def resumed(cls, log: MarketplaceSyncLog) -> Progress:
        """A run taking over a log whose runner died carries its counts on."""
        return cls(
            fetched=log.orders_fetched,
            result=IngestResult(log.orders_created, log.orders_updated, log.orders_unchanged),
            failed=log.orders_failed,
            pages=log.pages_done,
            events={
                k: v
                for k, v in (log.details or {}).items()
                if k in ("tokenRefreshes", "retries", "rateLimitWaitSeconds")
            },
        )

    def record_event(self, event: str, data: Mapping[str, Any]) -> None:
        """Token refreshes, retries and rate-limit waits, summed for the log's details."""
        if event == "token_refreshed":
            self.events["tokenRefreshes"] = self.events.get("tokenRefreshes", 0) + 1
        elif event == "retry":
            retries = self.events.setdefault("retries", {})
            reason = str(data.get("reason", "transient"))
            retries[reason] = retries.get(reason, 0) + 1
            self.events["lastRetryError"] = str(data.get("error", ""))[:300]
            if reason == "rate_limited":
                waited = self.events.get("rateLimitWaitSeconds", 0.0)
                self.events["rateLimitWaitSeconds"] = round(
                    waited + float(data.get("delaySeconds", 0)), 3
                )
        elif event in ("rate_limit_wait", "rate_limit_pause"):
            waited = self.events.get("throttleWaitSeconds", 0.0)
            self.events["throttleWaitSeconds"] = round(waited + float(data.get("seconds", 0)), 3)
        elif event == "order_failed":
            self.skipped[str(data.get("externalOrderId"))] = str(data.get("message", ""))

    def stored(self, orders: Sequence[NormalizedOrder]) -> None:
        latest = max((order.updated_at for order in orders), default=None)
        if latest is not None and (self.max_stored is None or latest > self.max_stored):
            self.max_stored = latest

    def write_to(self, log: MarketplaceSyncLog, details: dict[str, Any]) -> None:
        log.orders_fetched = self.fetched
        log.orders_created = self.result.created
        log.orders_updated = self.result.updated
        log.orders_unchanged = self.result.unchanged
        log.orders_failed = self.failed
        log.pages_done = self.pages
        log.heartbeat_at = datetime.now(UTC)
        log.details = {**(log.details or {}), **details, **self.events}


@dataclass(frozen=True, slots=True)
class RunTarget:
    """What one run writes to: its log and connection."""

    sync_log_id: uuid.UUID
    connection_id: uuid.UUID
    user_id: str
    platform: PlatformCode
    trigger: str


def sync_range(
    connection: MarketplaceConnection, log: MarketplaceSyncLog, settings: Settings
) -> tuple[datetime, datetime]:
    """[since, until): a backfill on the first or a `full` sync, the last RECONCILE_DAYS for a
    reconcile, else from the high-water mark less an overlap (the platforms' indexing lag).
    `until` is the next whole second after now: platforms count update times in whole seconds,
    so every order updated up to the moment the run started falls inside the range."""
    now = datetime.now(UTC)
    until = now.replace(microsecond=0) + timedelta(seconds=1)
    backfill_from = until - timedelta(days=settings.sync_backfill_days)
    if log.trigger == SyncTrigger.RECONCILE:
        return until - timedelta(days=settings.reconcile_days), until
    mark = connection.orders_high_water_mark
    if log.full or mark is None:
        return backfill_from, until
    return mark - timedelta(seconds=settings.sync_overlap_seconds), until


async def run_sync(wc: WorkerContext, sync_log_id: uuid.UUID) -> str:
    """Run one sync to its end. Safe to call twice for one log (arq may run a job twice, and
    the recovery sweep re-queues a log whose runner died): a second call finds the log
    finished, or the connection's advisory lock taken, or takes over from the saved progress."""
    async with wc.sessionmaker() as session:
        log = await session.get(MarketplaceSyncLog, sync_log_id)
        if log is None or log.status != SyncStatus.RUNNING:
            return log.status if log else "missing"
        connection_id = log.connection_id
    key = connection_lock_key(connection_id)
    async with wc.database.engine.connect() as lock_connection:
        if not await lock_connection.scalar(select(func.pg_try_advisory_lock(key))):
            return SyncStatus.RUNNING  # another worker is executing this connection's sync
        await lock_connection.commit()
        heartbeat = asyncio.create_task(_heartbeat(wc, sync_log_id))
        try:
            outcome = await _run_locked(wc, sync_log_id)
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
            # Shielded: a cancelled job must still give the lock back on this connection.
            await asyncio.shield(_unlock(lock_connection, key))
    if outcome == INTERRUPTED:
        # Hand the rest over now rather than at the next recovery sweep.
        with contextlib.suppress(DBAPIError, OSError):
            async with wc.sessionmaker() as session:
                enqueue(session, SYNC_JOB, str(sync_log_id), dedupe_key=sync_job_key(sync_log_id))
                await session.commit()
    return outcome


async def _unlock(lock_connection: Any, key: int) -> None:
    await lock_connection.execute(select(func.pg_advisory_unlock(key)))
    await lock_connection.commit()


async def _heartbeat(wc: WorkerContext, sync_log_id: uuid.UUID) -> None:
    """Say "alive" between batches too, so a slow marketplace never looks like a dead run."""
    interval = max(1.0, wc.settings.sync_stale_seconds / 4)
    while True:
        await asyncio.sleep(interval)
        with contextlib.suppress(DBAPIError, OSError):
            async with wc.sessionmaker() as session:
                await repository.touch(session, sync_log_id)
                await session.commit()


async def _run_locked(wc: WorkerContext, sync_log_id: uuid.UUID) -> str:
    async with wc.sessionmaker() as session:
        log = await session.get(MarketplaceSyncLog, sync_log_id)
        assert log is not None
        if log.status != SyncStatus.RUNNING:
            return log.status
        connection = await session.get(MarketplaceConnection, log.connection_id)
        assert connection is not None
        resuming = log.pages_done > 0 or "range" in (log.details or {})
        progress = Progress.resumed(log) if resuming else Progress()
        since, until = sync_range(connection, log, wc.settings)
        details: dict[str, Any] = {
            "range": {"from": since.isoformat(), "to": until.isoformat()},
            "resumedFromHighWaterMark": (
                connection.orders_high_water_mark.isoformat()
                if connection.orders_high_water_mark and not log.full
                else None
            ),
        }
        if resuming:
            details["resumes"] = int((log.details or {}).get("resumes", 0)) + 1
        log.checkpoint = {"from": since.isoformat(), "to": until.isoformat()}
        log.details = {**(log.details or {}), **details}
        await session.commit()
        target = RunTarget(
            sync_log_id,
            connection.id,
            connection.user_id,
            PlatformCode(connection.platform_code),
            log.trigger,
        )

    client = connection_client(wc, connection, events=progress.record_event)
    try:
        await _sync_range(wc, client, target, since, until, progress, details)
        await _retry_failed_orders(wc, client, target, progress, details)
        return await _finish(wc, target, progress, details, None)
    except MarketplaceError as exc:
        return await _finish(wc, target, progress, details, exc)
    except SyncInterrupted:
        return INTERRUPTED
    except asyncio.CancelledError:
        # The worker is stopping: every committed batch is saved and the log stays `running`,
        # so arq's re-run or the recovery sweep resumes it from there.
        logger.info("sync interrupted; it resumes", extra={"sync_log_id": str(sync_log_id)})
        raise
    except Exception as exc:
        logger.exception("sync failed", extra={"sync_log_id": str(sync_log_id)})
        message = (
            f"Internal error ({type(exc).__name__}); the next sync resumes from the last saved page"
        )
        return await _finish(wc, target, progress, details, message)
    finally:
        await client.aclose()


async def _sync_range(
    wc: WorkerContext,
    client: MarketplaceClient,
    target: RunTarget,
    since: datetime,
    until: datetime,
    progress: Progress,
    details: dict[str, Any],
) -> None:
    pages: asyncio.Queue[OrderPage | Exception | None] = asyncio.Queue(maxsize=PAGES_AHEAD)

    async def produce() -> None:
        try:
            async for page in client.iter_orders(since, until):
                await pages.put(page)
        except Exception as exc:  # handed to the writer, which decides the log's outcome
            await pages.put(exc)
            return
        await pages.put(None)

    producer = asyncio.create_task(produce())
    try:
        while (item := await pages.get()) is not None:
            if isinstance(item, Exception):
                raise item
            drained = _drain_ready(pages, item)
            orders = [order for page in drained.pages for order in page.orders]
            failures = [failure for page in drained.pages for failure in page.failures]
            # Everything updated before the batch's resume point was yielded, and the mark
            # never passes an update time that was actually stored.
            await _store(
                wc,
                target,
                orders,
                failures,
                progress,
                details,
                pages=len(drained.pages),
                resume_from=drained.pages[-1].resume_from,
            )
            if drained.error is not None:
                raise drained.error
            if drained.ended:
                break
            if wc.stopping.is_set():
                raise SyncInterrupted
        await producer
    finally:
        producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)


class SyncInterrupted(Exception):
    """The worker is stopping: the run ends after a committed batch and resumes elsewhere."""


@dataclass
class Drained:
    pages: list[OrderPage]
    ended: bool = False  # the client has no more pages
    error: Exception | None = None  # the client failed after these pages


def _drain_ready(queue: asyncio.Queue[OrderPage | Exception | None], first: OrderPage) -> Drained:
    """The first page plus those already waiting: when the writer falls behind, it writes
    several pages in one transaction instead of paying a commit for each."""
    drained = Drained([first])
    while len(drained.pages) < WRITE_BATCH_PAGES and not queue.empty():
        item = queue.get_nowait()
        if item is None:
            drained.ended = True
            break
        if isinstance(item, Exception):
            drained.error = item
            break
        drained.pages.append(item)
    return drained


async def _ingest(
    session: AsyncSession, orders: list[NormalizedOrder], target: RunTarget
) -> tuple[IngestResult, list[NormalizedOrder], list[OrderFailure]]:
    """The batch in one statement; if the database refuses it, order by order so one bad
    order is counted and kept for retry instead of stalling the whole sync."""

    async def upsert(batch: list[NormalizedOrder]) -> IngestResult:
        return await upsert_orders(
            session,
            batch,
            connection_id=target.connection_id,
            user_id=target.user_id,
            platform_code=target.platform.value,
        )

    try:
        async with session.begin_nested():
            return await upsert(orders), orders, []
    except DBAPIError as exc:
        if is_database_unavailable(exc):
            raise
    result, stored, failures = IngestResult(), [], []
    for order in orders:
        try:
            async with session.begin_nested():
                result.add(await upsert([order]))
            stored.append(order)
        except DBAPIError as exc:
            if is_database_unavailable(exc):
                raise  # an outage, not this order's fault: the run fails and resumes later
            failures.append(
                OrderFailure(
                    order.external_order_id,
                    f"Could not store the order: {hide_statement_values(str(exc.orig))}",
                )
            )
    return result, stored, failures


async def _store(
    wc: WorkerContext,
    target: RunTarget,
    orders: list[NormalizedOrder],
    read_failures: list[OrderFailure],
    progress: Progress,
    details: dict[str, Any],
    *,
    pages: int = 0,
    retried: bool = False,
    resume_from: datetime | None = None,
) -> None:
    """One transaction: the orders, the failures kept for retry (and the retried ones that
    are now stored struck off), the log's progress and the high-water mark together, so a
    crash after it loses nothing and a crash before it is simply redone."""
    async with wc.sessionmaker() as session:
        # Progress and data commit together and a lost commit is redone by the resume, so the
        # sync need not wait for each WAL flush.
        await session.execute(text("SET LOCAL synchronous_commit = off"))
        result, stored, write_failures = await _ingest(session, orders, target)
        failures = read_failures + write_failures
        await repository.keep_failed_orders(session, target.connection_id, failures)
        await repository.forget_failed_orders(
            session, target.connection_id, [order.external_order_id for order in stored]
        )
        if not retried:  # a retried order was counted by the run that first fetched it
            progress.fetched += len(orders) + len(read_failures)
            progress.failed += len(failures)
        progress.result.add(result)
        progress.pages += pages
        progress.stored(stored)
        log = await session.get(MarketplaceSyncLog, target.sync_log_id)
        assert log is not None
        progress.write_to(log, details)
        if resume_from is not None and progress.max_stored is not None:
            # Everything updated before the batch's resume point was yielded, and the mark
            # never passes an update time that was actually stored.
            mark = min(resume_from, progress.max_stored)
            await connections.advance_high_water_mark(session, target.connection_id, mark)
            log.checkpoint = {**log.checkpoint, "resumeFrom": mark.isoformat()}
        await session.commit()


async def _retry_failed_orders(
    wc: WorkerContext,
    client: MarketplaceClient,
    target: RunTarget,
    progress: Progress,
    details: dict[str, Any],
) -> None:
    """Orders earlier runs (or this one) could not read or store, fetched by id: the ones the
    platform returns and that store now are created or updated in this run's counts."""
    async with wc.sessionmaker() as session:
        ids = await repository.failed_order_ids(session, target.connection_id, RETRY_PER_RUN)
    for start in range(0, len(ids), RETRY_BATCH):
        chunk = ids[start : start + RETRY_BATCH]
        progress.skipped.clear()
        orders = await client.get_orders(chunk)
        returned = {order.external_order_id for order in orders}
        missing = [
            OrderFailure(order_id, progress.skipped.get(order_id, NOT_RETURNED))
            for order_id in chunk
            if order_id not in returned
        ]
        await _store(wc, target, orders, missing, progress, details, retried=True)


async def _finish(
    wc: WorkerContext,
    target: RunTarget,
    progress: Progress,
    details: dict[str, Any],
    error: MarketplaceError | str | None,
) -> str:
    """Close the log. Completed runs are `success`, or `partial` while any order of the
    connection is still waiting to be stored; every waiting order is listed."""
    async with wc.sessionmaker() as session:
        log = await session.get(MarketplaceSyncLog, target.sync_log_id)
        assert log is not None
        progress.write_to(log, details)
        waiting = await repository.failed_orders(session, target.connection_id, MAX_FAILURES_LISTED)
        waiting_count = await repository.count_failed_orders(session, target.connection_id)
        log.orders_failed = waiting_count
        log.details = {
            **log.details,
            "failedOrders": [
                {"externalOrderId": row.external_order_id, "message": row.message[:300]}
                for row in waiting
            ],
        }
        log.finished_at = datetime.now(UTC)
        if error is None:
            status = SyncStatus.PARTIAL if waiting_count else SyncStatus.SUCCESS
            if target.trigger == SyncTrigger.RECONCILE:
                # What the schedule and the pushes had missed, and this run put right.
                log.details = {
                    **log.details,
                    "repaired": {
                        "created": progress.result.created,
                        "updated": progress.result.updated,
                    },
                }
            if progress.max_stored is not None:
                # Every order updated in the range was yielded: the mark may move to the
                # latest update time stored (never to `until`, which no order may carry).
                await connections.advance_high_water_mark(
                    session, target.connection_id, progress.max_stored
                )
            await connections.mark_status(
                session, target.connection_id, ConnectionStatus.ACTIVE, None
            )
        else:
            status = SyncStatus.FAILED
            if isinstance(error, MarketplaceError):
                log.error_message = error.message
                log.details = {
                    **log.details,
                    "errorClass": type(error).__name__,
                    "errorCode": error.code,
                    "platformRequestId": error.request_id,
                }
                new_status = connections.status_for_failure(error)
                if new_status is not None:
                    await connections.mark_status(
                        session, target.connection_id, new_status, error.message
                    )
            else:
                log.error_message = error
        log.status = status
        if status == SyncStatus.FAILED:
            await alerts.alert_if_failing_repeatedly(
                session,
                connection_id=target.connection_id,
                platform_code=target.platform.value,
                sync_log_id=target.sync_log_id,
            )
        await connections.record_sync_finished(session, target.connection_id, log.finished_at)
        await session.commit()
        stored = progress.result.created + progress.result.updated
        metrics.record_sync(target.platform.value, status, stored)
        return status
