"""The one lifecycle of a sync-log row, shared by the order sync (app/sync) and the product
sync (app/products): open a running log (one per connection and kind, a database fact), keep
it alive, check per batch that the connection may still be written for, close it
(`success`, `partial`, `failed`), close a run whose runner died, and hand a run over to
another job. Each kind differs only in the values of its `SyncKind`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from pydantic import BaseModel
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import (
    ConnectionDisconnected,
    ConnectionMisconfigured,
    ReauthRequired,
    SyncAlreadyRunning,
)
from app.jobs.outbox import enqueue
from app.models import MarketplaceConnection, MarketplaceSyncLog
from app.models.enums import ConnectionStatus, SyncStatus, SyncTrigger
from app.sync import repository


@dataclass(frozen=True, slots=True)
class SyncKind:
    name: str  # the log's `kind`
    job: str  # the arq function that runs one log, by id
    interrupted: str  # the error message of a run closed because its runner died
    # Runs hold the connection's advisory lock while they execute (the order sync), so a
    # quiet heartbeat alone does not make a run dead: its lock must be free too.
    runner_lock: bool


ORDERS = SyncKind(
    repository.ORDERS,
    "sync_orders",
    "Interrupted: the worker stopped before the sync finished. The next sync resumes from the "
    "last saved page.",
    runner_lock=True,
)
PRODUCTS = SyncKind(
    "products",
    "sync_products",
    "Interrupted: the worker stopped before the product sync finished.",
    runner_lock=False,
)

Summary = TypeVar("Summary", bound=BaseModel)

DISCONNECTED = "Stopped: the connection was disconnected while the sync ran"


def ensure_syncable(connection: MarketplaceConnection) -> None:
    if connection.status == ConnectionStatus.DISCONNECTED:
        raise ConnectionDisconnected("This connection is disconnected")
    if connection.status == ConnectionStatus.REAUTH_REQUIRED:
        raise ReauthRequired(connection.status_reason)
    if connection.status == ConnectionStatus.MISCONFIGURED:
        raise ConnectionMisconfigured(connection.status_reason)


def job_id(kind: SyncKind, sync_log_id: uuid.UUID) -> str:
    return f"{kind.job}:{sync_log_id}"


async def running(
    session: AsyncSession, connection_id: uuid.UUID, kind: SyncKind
) -> MarketplaceSyncLog | None:
    return await session.scalar(
        select(MarketplaceSyncLog).where(
            MarketplaceSyncLog.connection_id == connection_id,
            MarketplaceSyncLog.kind == kind.name,
            MarketplaceSyncLog.status == SyncStatus.RUNNING,
        )
    )


async def close_if_dead(
    session: AsyncSession, log: MarketplaceSyncLog, kind: SyncKind, stale_after: timedelta
) -> bool:
    """A running log whose runner is gone (no heartbeat for a while, and for a kind with a
    runner lock, that lock free) is closed `failed` so the connection can sync again."""
    if datetime.now(UTC) - (log.heartbeat_at or log.started_at) < stale_after:
        return False
    if kind.runner_lock and not await repository.runner_gone(session, log.connection_id):
        return False
    finish(log, SyncStatus.FAILED, kind.interrupted)
    await session.flush()
    return True


async def open_run(
    session: AsyncSession,
    connection: MarketplaceConnection,
    kind: SyncKind,
    *,
    stale_after: timedelta,
    trigger: SyncTrigger = SyncTrigger.MANUAL,
    full: bool = False,
    queue: bool = True,
) -> MarketplaceSyncLog:
    """The running log, and with `queue` its job (sent once `session` commits). A run of this
    kind already running for the connection is a 409 carrying its id, whichever process
    started it; one whose runner died is closed first."""
    ensure_syncable(connection)
    current = await running(session, connection.id, kind)
    if current is not None and not await close_if_dead(session, current, kind, stale_after):
        raise SyncAlreadyRunning(current.id)
    now = datetime.now(UTC)
    log = MarketplaceSyncLog(
        id=uuid.uuid4(),
        connection_id=connection.id,
        user_id=connection.user_id,
        kind=kind.name,
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
        winner = await running(session, connection.id, kind)
        raise SyncAlreadyRunning(winner.id if winner else None) from None
    if queue:
        queue_run(session, kind, log.id)
    return log


def queue_run(session: AsyncSession, kind: SyncKind, sync_log_id: uuid.UUID) -> None:
    """The job that runs the log, sent once `session` commits (a second ask while it waits
    is a no-op)."""
    enqueue(session, kind.job, str(sync_log_id), dedupe_key=job_id(kind, sync_log_id))


def hand_over(session: AsyncSession, kind: SyncKind, sync_log_id: uuid.UUID) -> None:
    """Queue another job to go on with a run this one could not finish (a stopping worker, a
    dead runner). No dedupe key: the dead or stopping job may still count as queued."""
    enqueue(session, kind.job, str(sync_log_id))


async def requeue_dead_runs(session: AsyncSession, kind: SyncKind, stale_after: timedelta) -> int:
    """Hand over every running log of `kind` whose runner died (killed worker, lost job), so
    a live worker resumes it from its saved progress without anyone asking."""
    requeued = 0
    stale = await repository.stale_running(session, datetime.now(UTC) - stale_after, kind.name)
    for log in stale:
        if kind.runner_lock and not await repository.runner_gone(session, log.connection_id):
            continue
        log.details = {
            **(log.details or {}),
            "requeued": (log.details or {}).get("requeued", 0) + 1,
        }
        log.heartbeat_at = datetime.now(UTC)  # not re-queued again before it is stale again
        hand_over(session, kind, log.id)
        requeued += 1
    await session.flush()
    return requeued


async def touch(session: AsyncSession, sync_log_id: uuid.UUID) -> None:
    """The runner is alive (between batches too, so a slow marketplace never looks dead)."""
    await session.execute(
        update(MarketplaceSyncLog)
        .where(
            MarketplaceSyncLog.id == sync_log_id,
            MarketplaceSyncLog.status == SyncStatus.RUNNING,
        )
        .values(heartbeat_at=func.now())
    )


async def stop_reason(session: AsyncSession, connection_id: uuid.UUID) -> str | None:
    """Why a run must stop before writing its next batch (None: go on). Taken first in every
    batch's transaction, the connection's row lock (held until that short transaction ends)
    orders the batch with a disconnect: a batch committed first is erased by the disconnect,
    and a batch after it sees `disconnected` and writes nothing. Taking the connection before
    the orders is also the order a disconnect locks in, so the two never deadlock."""
    status = await session.scalar(
        select(MarketplaceConnection.status)
        .where(MarketplaceConnection.id == connection_id)
        .with_for_update(key_share=True)  # FOR NO KEY UPDATE
    )
    if status is None or status == ConnectionStatus.DISCONNECTED:
        return DISCONNECTED
    return None


def summary(log: MarketplaceSyncLog, schema: type[Summary]) -> Summary:
    """The sync-log resource in `schema` (the order or the product fields), named as
    INTERFACE.md has them: `syncLogId` is the log's id, the rest its columns."""
    columns = {name: getattr(log, name) for name in schema.model_fields if hasattr(log, name)}
    return schema.model_validate({**columns, "sync_log_id": log.id, "details": log.details or {}})


def finish(
    log: MarketplaceSyncLog, status: SyncStatus, error_message: str | None = None
) -> datetime:
    """Close the log; returns its `finishedAt`."""
    log.status = status
    log.error_message = error_message
    log.finished_at = datetime.now(UTC)
    return log.finished_at
