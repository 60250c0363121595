"""Starting syncs (one per connection, whoever asks), and reading their logs."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import NotFoundError, SyncAlreadyRunning
from app.models import MarketplaceConnection, MarketplaceSyncLog
from app.models.enums import ConnectionStatus, SyncStatus, SyncTrigger
from app.sync import lifecycle, repository
from app.sync.schemas import SyncSummary
from app.uow import UnitOfWork

SYNC_JOB = lifecycle.ORDERS.job
INTERRUPTED = lifecycle.ORDERS.interrupted


def summary(log: MarketplaceSyncLog) -> SyncSummary:
    return lifecycle.summary(log, SyncSummary)


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
    return await lifecycle.open_run(
        uow.session,
        connection,
        lifecycle.ORDERS,
        stale_after=stale_after,
        trigger=trigger,
        full=full,
    )


async def requeue_dead_runs(uow: UnitOfWork, stale_after: timedelta) -> int:
    """Re-queue every running sync whose runner died (killed worker, lost job), so a live
    worker resumes it from its saved progress without anyone asking."""
    return await lifecycle.requeue_dead_runs(uow.session, lifecycle.ORDERS, stale_after)


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
        if log.status != SyncStatus.RUNNING or asyncio.get_running_loop().time() >= deadline:
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
