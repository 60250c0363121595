"""Starting syncs (one per connection, whoever asks), and reading their logs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import ConflictError, NotFoundError
from app.models import MarketplaceConnection, MarketplaceSyncLog
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
        status=log.status,
        trigger=log.trigger,
        full=log.full,
        orders_fetched=log.orders_fetched,
        orders_created=log.orders_created,
        orders_updated=log.orders_updated,
        orders_unchanged=log.orders_unchanged,
        orders_failed=log.orders_failed,
        pages_done=log.pages_done,
        started_at=log.started_at,
        finished_at=log.finished_at,
        error_message=log.error_message,
        details=log.details or {},
    )


def _syncable(connection: MarketplaceConnection) -> None:
    if connection.status == "disconnected":
        raise ConflictError("This connection is disconnected", code="connection_disconnected")
    if connection.status == "reauth_required":
        raise ConflictError(
            "The marketplace no longer accepts this connection's credentials; re-authorize it "
            f"(PATCH the connection with new credentials). Reason: {connection.status_reason}",
            code="reauth_required",
        )


async def _clear_if_dead(
    session: AsyncSession, running: MarketplaceSyncLog, stale_after: timedelta
) -> bool:
    """A running log whose runner is gone (no lock held, no heartbeat for a while) is closed
    so the connection can sync again; the next run resumes from the saved high-water mark."""
    last_seen = running.heartbeat_at or running.started_at
    if datetime.now(UTC) - last_seen < stale_after:
        return False
    if await repository.runner_alive(session, running.connection_id):
        return False
    running.status = "failed"
    running.finished_at = datetime.now(UTC)
    running.error_message = INTERRUPTED
    await session.flush()
    return True


async def start_sync(
    uow: UnitOfWork,
    connection: MarketplaceConnection,
    *,
    full: bool = False,
    trigger: str = "manual",
    stale_after: timedelta = timedelta(minutes=2),
) -> MarketplaceSyncLog:
    """Create the running log and queue the job (sent after commit). A sync already running
    for the connection is a 409 carrying its id, whichever process started it."""
    _syncable(connection)
    session = uow.session
    running = await repository.running_for_connection(session, connection.id)
    if running is not None and not await _clear_if_dead(session, running, stale_after):
        raise ConflictError(
            "A sync is already running for this connection",
            code="sync_running",
            syncLogId=str(running.id),
        )
    now = datetime.now(UTC)
    log = MarketplaceSyncLog(
        id=uuid.uuid4(),
        connection_id=connection.id,
        user_id=connection.user_id,
        status="running",
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
        raise ConflictError(
            "A sync is already running for this connection",
            code="sync_running",
            syncLogId=str(winner.id) if winner else None,
        ) from None
    uow.enqueue_after_commit(SYNC_JOB, str(log.id), job_id=f"{SYNC_JOB}:{log.id}")
    return log


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


async def due_connections(session: AsyncSession) -> Sequence[MarketplaceConnection]:
    """Connections whose own schedule says a sync is due and none is running."""
    now = datetime.now(UTC)
    rows = await session.scalars(
        select(MarketplaceConnection).where(
            MarketplaceConnection.is_active.is_(True),
            MarketplaceConnection.status.in_(("active", "error")),
            MarketplaceConnection.sync_interval_minutes.is_not(None),
        )
    )
    due = []
    for connection in rows:
        interval = timedelta(minutes=connection.sync_interval_minutes or 0)
        if connection.last_sync_at is None or now - connection.last_sync_at >= interval:
            due.append(connection)
    return due
