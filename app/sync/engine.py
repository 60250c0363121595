"""The order sync pipeline: list and fetch pages (the client), normalize (the client's mapper),
upsert in batches, and save progress after every committed batch so a dead run resumes."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.connections.credentials import DatabaseTokenStore, decrypt_credentials
from app.connections.service import mark_status, status_for_failure
from app.models import MarketplaceConnection, MarketplaceSyncLog
from app.orders.ingest import IngestResult, upsert_orders
from app.platforms.base import OrderFailure, OrderPage
from app.platforms.errors import MarketplaceError
from app.platforms.registry import build_client
from app.platforms.types import NormalizedOrder, PlatformCode
from app.sync.repository import connection_lock_key
from app.sync.service import INTERRUPTED
from app.worker_context import WorkerContext

logger = logging.getLogger("app.sync")

# Pages fetched ahead of the writer: enough to overlap network and database, small enough
# that memory stays flat however large the shop is.
PAGES_AHEAD = 4
# At most this many fetched pages go into one transaction.
WRITE_BATCH_PAGES = 4
MAX_FAILURES_LISTED = 20


@dataclass
class Progress:
    fetched: int = 0
    result: IngestResult = field(default_factory=IngestResult)
    failed: int = 0
    pages: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    events: dict[str, Any] = field(default_factory=dict)

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

    def add_failures(self, failures: list[OrderFailure]) -> None:
        self.failed += len(failures)
        for failure in failures[: max(0, MAX_FAILURES_LISTED - len(self.failures))]:
            self.failures.append(
                {"externalOrderId": failure.external_order_id, "message": failure.message[:300]}
            )

    def write_to(self, log: MarketplaceSyncLog, details: dict[str, Any]) -> None:
        log.orders_fetched = self.fetched
        log.orders_created = self.result.created
        log.orders_updated = self.result.updated
        log.orders_unchanged = self.result.unchanged
        log.orders_failed = self.failed
        log.pages_done = self.pages
        log.heartbeat_at = datetime.now(UTC)
        log.details = {**details, **self.events, "failedOrders": list(self.failures)}


def sync_range(
    connection: MarketplaceConnection, log: MarketplaceSyncLog, wc: WorkerContext
) -> tuple[datetime, datetime]:
    """Backfill on the first or a `full` sync; otherwise from the high-water mark less an
    overlap. Never from wall-clock "now" of the last run."""
    until = datetime.now(UTC).replace(microsecond=0)
    backfill_from = until - timedelta(days=wc.settings.sync_backfill_days)
    mark = connection.orders_high_water_mark
    if log.full or mark is None:
        return backfill_from, until
    return mark - timedelta(seconds=wc.settings.sync_overlap_seconds), until


async def run_sync(wc: WorkerContext, sync_log_id: uuid.UUID) -> str:
    """Run one sync to its end. Safe to call twice for one log (arq may run a job twice): the
    second call finds the log finished, or the connection's advisory lock taken."""
    async with wc.sessionmaker() as session:
        log = await session.get(MarketplaceSyncLog, sync_log_id)
        if log is None or log.status != "running":
            return log.status if log else "missing"
        connection_id = log.connection_id
    key = connection_lock_key(connection_id)
    async with wc.database.engine.connect() as lock_connection:
        if not await lock_connection.scalar(select(func.pg_try_advisory_lock(key))):
            return "running"  # another worker is executing this connection's sync
        await lock_connection.commit()
        try:
            return await _run_locked(wc, sync_log_id)
        finally:
            await lock_connection.execute(select(func.pg_advisory_unlock(key)))
            await lock_connection.commit()


async def _run_locked(wc: WorkerContext, sync_log_id: uuid.UUID) -> str:
    async with wc.sessionmaker() as session:
        log = await session.get(MarketplaceSyncLog, sync_log_id)
        assert log is not None
        if log.status != "running":
            return log.status
        connection = await session.get(MarketplaceConnection, log.connection_id)
        assert connection is not None
        since, until = sync_range(connection, log, wc)
        details: dict[str, Any] = {
            "range": {"from": since.isoformat(), "to": until.isoformat()},
            "resumedFromHighWaterMark": (
                connection.orders_high_water_mark.isoformat()
                if connection.orders_high_water_mark and not log.full
                else None
            ),
        }
        log.checkpoint = {"from": since.isoformat(), "to": until.isoformat()}
        log.details = details
        await session.commit()
        credentials = decrypt_credentials(connection, wc.cipher)
        platform = PlatformCode(connection.platform_code)
        user_id, connection_id = connection.user_id, connection.id

    progress = Progress()
    client = build_client(
        platform,
        credentials,
        wc.settings,
        token_store=DatabaseTokenStore(wc.sessionmaker, wc.cipher, connection_id),
        events=progress.record_event,
        http_client=wc.http,
        limiter=wc.limiter_for(connection_id),
    )
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
            await _store_page(
                wc, sync_log_id, connection_id, user_id, platform, drained.pages, progress, details
            )
            if drained.error is not None:
                raise drained.error
            if drained.ended:
                break
        await producer
        status = "partial" if progress.failed else "success"
        await _finish(wc, sync_log_id, connection_id, progress, details, status, None, until)
        return status
    except MarketplaceError as exc:
        await _finish(wc, sync_log_id, connection_id, progress, details, "failed", exc, None)
        return "failed"
    except asyncio.CancelledError:
        await asyncio.shield(
            _finish(wc, sync_log_id, connection_id, progress, details, "failed", INTERRUPTED, None)
        )
        raise
    except Exception as exc:
        logger.exception("sync failed", extra={"sync_log_id": str(sync_log_id)})
        message = (
            f"Internal error ({type(exc).__name__}); the next sync resumes from the last saved page"
        )
        await _finish(wc, sync_log_id, connection_id, progress, details, "failed", message, None)
        return "failed"
    finally:
        producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)
        await client.aclose()


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
    session: AsyncSession,
    orders: list[NormalizedOrder],
    *,
    connection_id: uuid.UUID,
    user_id: str,
    platform: PlatformCode,
) -> tuple[IngestResult, list[OrderFailure]]:
    """The batch in one statement; if the database refuses it, order by order so one bad
    order is counted and logged instead of stalling the whole sync."""
    try:
        async with session.begin_nested():
            result = await upsert_orders(
                session,
                orders,
                connection_id=connection_id,
                user_id=user_id,
                platform_code=platform.value,
            )
        return result, []
    except DBAPIError:
        pass
    result, failures = IngestResult(), []
    for order in orders:
        try:
            async with session.begin_nested():
                result.add(
                    await upsert_orders(
                        session,
                        [order],
                        connection_id=connection_id,
                        user_id=user_id,
                        platform_code=platform.value,
                    )
                )
        except DBAPIError as exc:
            failures.append(
                OrderFailure(order.external_order_id, f"Could not store the order: {exc.orig}")
            )
    return result, failures


async def _store_page(
    wc: WorkerContext,
    sync_log_id: uuid.UUID,
    connection_id: uuid.UUID,
    user_id: str,
    platform: PlatformCode,
    batch: list[OrderPage],
    progress: Progress,
    details: dict[str, Any],
) -> None:
    """One transaction: the orders, the log's progress and the high-water mark together, so
    a crash after it loses nothing and a crash before it is simply redone."""
    orders = [order for page in batch for order in page.orders]
    read_failures = [failure for page in batch for failure in page.failures]
    resume_from = batch[-1].resume_from
    async with wc.sessionmaker() as session:
        # Progress and data commit together and a lost commit is redone by the resume, so the
        # sync need not wait for each WAL flush.
        await session.execute(text("SET LOCAL synchronous_commit = off"))
        result, write_failures = await _ingest(
            session, orders, connection_id=connection_id, user_id=user_id, platform=platform
        )
        progress.fetched += len(orders) + len(read_failures)
        progress.result.add(result)
        progress.add_failures(read_failures + write_failures)
        progress.pages += len(batch)
        log = await session.get(MarketplaceSyncLog, sync_log_id)
        assert log is not None
        progress.write_to(log, details)
        log.checkpoint = {**log.checkpoint, "resumeFrom": resume_from.isoformat()}
        await session.execute(
            update(MarketplaceConnection)
            .where(MarketplaceConnection.id == connection_id)
            .values(
                orders_high_water_mark=func.greatest(
                    func.coalesce(MarketplaceConnection.orders_high_water_mark, resume_from),
                    resume_from,
                )
            )
        )
        await session.commit()


async def _finish(
    wc: WorkerContext,
    sync_log_id: uuid.UUID,
    connection_id: uuid.UUID,
    progress: Progress,
    details: dict[str, Any],
    status: str,
    error: MarketplaceError | str | None,
    completed_until: datetime | None,
) -> None:
    async with wc.sessionmaker() as session:
        log = await session.get(MarketplaceSyncLog, sync_log_id)
        assert log is not None
        progress.write_to(log, details)
        log.status = status
        log.finished_at = datetime.now(UTC)
        if isinstance(error, MarketplaceError):
            log.error_message = error.message
            log.details = {
                **log.details,
                "errorClass": type(error).__name__,
                "errorCode": error.code,
                "platformRequestId": error.request_id,
            }
            new_status = status_for_failure(error)
            if new_status is not None:
                await mark_status(session, connection_id, new_status, error.message)
        elif error is not None:
            log.error_message = error
        values: dict[str, Any] = {"last_sync_at": log.finished_at}
        if completed_until is not None:
            # Every order updated before `until` is now stored: the mark may move up to it.
            values["orders_high_water_mark"] = func.greatest(
                func.coalesce(MarketplaceConnection.orders_high_water_mark, completed_until),
                completed_until,
            )
            if status in ("success", "partial"):
                await mark_status(session, connection_id, "active", None)
        await session.execute(
            update(MarketplaceConnection)
            .where(MarketplaceConnection.id == connection_id)
            .values(**values)
        )
        await session.commit()
