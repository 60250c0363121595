"""Starting syncs (one per connection, whoever asks), and reading their logs."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import (
    ConnectionDisconnected,
    NotFoundError,
    ReauthRequired,
    SyncAlreadyRunning,
)
from app.jobs.outbox import enqueue
from app.models import MarketplaceConnection, MarketplaceSyncLog
from app.models.enums import ConnectionStatus, SyncStatus, SyncTrigger
from app.sync import repository
from app.sync.schemas import SyncSummary
from app.uow import UnitOfWork

SYNC_JOB = "sync_orders"
INTERRUPTED = (
    "Interrupted: the worker stopped before the sync finished. The next sync resumes from the "
    "last saved page."
)


def summary(log: MarketplaceSyncLog) -> SyncSummary:
    return SyncSummary(
        sync_log_id=log.id,
        connection_id=log.connection_id,
        kind=log.kind,
        status=log.status,
        trigger=log.trigger,
        full=log.full,
        orders_fetched=log.orders_fetched,
        orders_created=log.orders_created,
        orders_updated=log.orders_updated,
        orders_unchanged=log.orders_unchanged,
        orders_failed=log.orders_failed,
        products_fetched=log.products_fetched,
        products_created=log.products_created,
        products_updated=log.products_updated,
        pages_done=log.pages_done,
        started_at=log.started_at,
        finished_at=log.finished_at,
        error_message=log.error_message,
        details=log.details or {},
    )


def _syncable(connection: MarketplaceConnection) -> None:
    if connection.status == ConnectionStatus.DISCONNECTED:
        raise ConnectionDisconnected("This connection is disconnected")
    if connection.status == ConnectionStatus.REAUTH_REQUIRED:
        raise ReauthRequired(connection.status_reason)


async def _close_if_dead(
    session: AsyncSession, running: MarketplaceSyncLog, stale_after: timedelta
) -> bool:
    """A running log whose runner is gone (no heartbeat for a while, and its lock free) is
    closed so the connection can sync again; the new run resumes from the high-water mark."""
    last_seen = running.heartbeat_at or running.started_at
    if datetime.now(UTC) - last_seen < stale_after:
        return False
    if not await repository.runner_gone(session, running.connection_id):
        return False
    running.status = SyncStatus.FAILED
    running.finished_at = datetime.now(UTC)
    running.error_message = INTERRUPTED
    await session.flush()
    return True


async def start_sync(
    uow: UnitOfWork,
    connection: MarketplaceConnection,
    *,
    stale_after: timedelta,
    full: bool = False,
    trigger: SyncTrigger = SyncTrigger.MANUAL,
) -> MarketplaceSyncLog:
    """Create the running log and queue the job (sent after commit). A sync already running
    for the connection is a 409 carrying its id, whichever process started it."""
    _syncable(connection)
    session = uow.session
    running = await repository.running_for_connection(session, connection.id)
    if running is not None and not await _close_if_dead(session, running, stale_after):
        raise SyncAlreadyRunning(running.id)
    now = datetime.now(UTC)
    log = MarketplaceSyncLog(
        id=uuid.uuid4(),
        connection_id=connection.id,
        user_id=connection.user_id,
        kind=repository.ORDERS,
        status=SyncStatus.RUNNING,
        trigger=trigger,
        full=full,
        started_at=now,
        heartbeat_at=now,
        details={},
        checkpoint={},
    )
    try:
        async with session.begin_nested():
            session.add(log)
    except IntegrityError:
        # Another process started one between our check and our insert: the unique index won.
        winner = await repository.running_for_connection(session, connection.id)
        raise SyncAlreadyRunning(winner.id if winner else None) from None
    enqueue(session, SYNC_JOB, str(log.id), dedupe_key=sync_job_key(log.id))
    return log


def sync_job_key(sync_log_id: uuid.UUID) -> str:
    """One waiting run per sync log (a start, a resume and a handover coalesce)."""
    return f"{SYNC_JOB}:{sync_log_id}"


async def requeue_dead_runs(uow: UnitOfWork, stale_after: timedelta) -> int:
    """Re-queue every running sync whose runner died (killed worker, lost job), so a live
    worker resumes it from its saved progress without anyone asking."""
    session = uow.session
    requeued = 0
    for log in await repository.stale_running(session, datetime.now(UTC) - stale_after):
        if not await repository.runner_gone(session, log.connection_id):
            continue
        log.details = {
            **(log.details or {}),
            "requeued": (log.details or {}).get("requeued", 0) + 1,
        }
        log.heartbeat_at = datetime.now(UTC)  # not re-queued again before it is stale again
        enqueue(session, SYNC_JOB, str(log.id), dedupe_key=sync_job_key(log.id))
        requeued += 1
    await session.flush()
    return requeued


async def wait_for_finish(
    sessionmaker: async_sessionmaker[AsyncSession], sync_log_id: uuid.UUID, seconds: float
) -> MarketplaceSyncLog:
    """Poll the log (any worker may run it) until it leaves `running` or time is up."""
    deadline = asyncio.get_running_loop().time() + seconds
    delay = 0.05
    while True:
        async with sessionmaker() as session:
            log = await session.get(MarketplaceSyncLog, sync_log_id)
        if log is None:
            raise NotFoundError("Sync log not found")
        if log.status != "running" or asyncio.get_running_loop().time() >= deadline:
            return log
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.5)


async def get_log(session: AsyncSession, user_id: str, sync_log_id: uuid.UUID) -> SyncSummary:
    log = await repository.get_for_user(session, user_id, sync_log_id)
    if log is None:
        raise NotFoundError("Sync log not found")
    return summary(log)


async def list_logs(
    session: AsyncSession,
    user_id: str,
    *,
    connection_id: uuid.UUID | None,
    limit: int,
    offset: int,
) -> tuple[list[SyncSummary], int]:
    rows, total = await repository.list_for_user(
        session, user_id, connection_id=connection_id, limit=limit, offset=offset
    )
    return [summary(row) for row in rows], total


def first_sync_at(connection: MarketplaceConnection, now: datetime) -> datetime | None:
    """When a schedule's first run is: between half an interval and one interval from now, at
    a point fixed by the connection's id, so a thousand connections made at once do not all
    sync in the same second (and a seller's own first sync is not raced by the schedule)."""
    if connection.sync_interval_minutes is None:
        return None
    interval = connection.sync_interval_minutes * 60
    spread = int.from_bytes(connection.id.bytes[-4:], "big") % (interval // 2 or 1)
    return now + timedelta(seconds=interval - spread)


async def start_due_syncs(uow: UnitOfWork, stale_after: timedelta, limit: int = 200) -> int:
    """Start the syncs whose time has come. Rows are claimed with SKIP LOCKED and moved one
    interval on in the same transaction, so several schedulers start each due sync once."""
    session = uow.session
    now = datetime.now(UTC)
    rows = await session.scalars(
        select(MarketplaceConnection)
        .where(
            MarketplaceConnection.is_active.is_(True),
            MarketplaceConnection.status.in_((ConnectionStatus.ACTIVE, ConnectionStatus.ERROR)),
            MarketplaceConnection.sync_interval_minutes.is_not(None),
            MarketplaceConnection.next_sync_at <= now,
        )
        .order_by(MarketplaceConnection.next_sync_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    started = 0
    for connection in rows.all():
        interval = timedelta(minutes=connection.sync_interval_minutes or 0)
        connection.next_sync_at = now + interval
        try:
            await start_sync(uow, connection, stale_after=stale_after, trigger=SyncTrigger.SCHEDULE)
            started += 1
        except SyncAlreadyRunning:
            continue  # the running one does the same work
    await session.flush()
    return started


async def start_reconciles(uow: UnitOfWork, stale_after: timedelta) -> int:
    """Daily: re-read the last RECONCILE_DAYS of every live shop (webhooks and schedules both
    miss things); the log's created/updated counts are what it repaired."""
    session = uow.session
    rows = await session.scalars(
        select(MarketplaceConnection)
        .where(
            MarketplaceConnection.is_active.is_(True),
            MarketplaceConnection.status.in_((ConnectionStatus.ACTIVE, ConnectionStatus.ERROR)),
        )
        .with_for_update(skip_locked=True)
    )
    started = 0
    for connection in rows.all():
        try:
            await start_sync(
                uow, connection, stale_after=stale_after, trigger=SyncTrigger.RECONCILE
            )
            started += 1
        except SyncAlreadyRunning:
            continue
    return started
