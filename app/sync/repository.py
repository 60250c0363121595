from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import MarketplaceFailedOrder, MarketplaceSyncLog
from app.models.enums import SyncStatus
from app.platforms.base import OrderFailure


async def get_for_user(
    session: AsyncSession, user_id: str, sync_log_id: uuid.UUID
) -> MarketplaceSyncLog | None:
    return await session.scalar(
        select(MarketplaceSyncLog).where(
            MarketplaceSyncLog.id == sync_log_id, MarketplaceSyncLog.user_id == user_id
        )
    )


async def list_for_user(
    session: AsyncSession,
    user_id: str,
    *,
    connection_id: uuid.UUID | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[MarketplaceSyncLog], int]:
    where = [MarketplaceSyncLog.user_id == user_id]
    if connection_id is not None:
        where.append(MarketplaceSyncLog.connection_id == connection_id)
    rows = await session.scalars(
        select(MarketplaceSyncLog)
        .where(*where)
        .order_by(MarketplaceSyncLog.started_at.desc(), MarketplaceSyncLog.id)
        .limit(limit)
        .offset(offset)
    )
    total = await session.scalar(select(func.count()).select_from(MarketplaceSyncLog).where(*where))
    return rows.all(), int(total or 0)


# Product syncs share the log table under their own kind (app/sync/lifecycle.py).
ORDERS = "orders"


def connection_lock_key(connection_id: uuid.UUID) -> int:
    """A stable 63-bit advisory-lock key for "a sync of this connection is executing"."""
    return int.from_bytes(connection_id.bytes[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


async def runner_gone(session: AsyncSession, connection_id: uuid.UUID) -> bool:
    """Whether no process runs this connection's sync. Taking the runner's lock for the rest of
    this transaction (advisory locks are per database) answers it without a race: until we
    commit, no job can start running the sync we are about to close or re-queue."""
    key = connection_lock_key(connection_id)
    return bool(await session.scalar(select(func.pg_try_advisory_xact_lock(key))))


async def stale_running(
    session: AsyncSession, heartbeat_before: datetime, kind: str = ORDERS, limit: int = 100
) -> Sequence[MarketplaceSyncLog]:
    rows = await session.scalars(
        select(MarketplaceSyncLog)
        .where(
            MarketplaceSyncLog.kind == kind,
            MarketplaceSyncLog.status == SyncStatus.RUNNING,
            func.coalesce(MarketplaceSyncLog.heartbeat_at, MarketplaceSyncLog.started_at)
            < heartbeat_before,
        )
        .order_by(MarketplaceSyncLog.started_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return rows.all()


async def keep_failed_orders(
    session: AsyncSession, connection_id: uuid.UUID, failures: Sequence[OrderFailure]
) -> None:
    if not failures:
        return
    latest = {failure.external_order_id: failure.message for failure in failures}
    statement = insert(MarketplaceFailedOrder).values(
        [
            {"connection_id": connection_id, "external_order_id": order_id, "message": message}
            for order_id, message in latest.items()
        ]
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["connection_id", "external_order_id"],
            set_={
                "message": statement.excluded.message,
                "attempts": MarketplaceFailedOrder.attempts + 1,
                "last_failed_at": func.now(),
            },
        )
    )


async def forget_failed_orders(
    session: AsyncSession, connection_id: uuid.UUID, external_order_ids: Sequence[str]
) -> None:
    """Strike off orders that are now stored."""
    if not external_order_ids:
        return
    await session.execute(
        delete(MarketplaceFailedOrder).where(
            MarketplaceFailedOrder.connection_id == connection_id,
            MarketplaceFailedOrder.external_order_id.in_(external_order_ids),
        )
    )


async def failed_orders(
    session: AsyncSession, connection_id: uuid.UUID, limit: int
) -> Sequence[MarketplaceFailedOrder]:
    rows = await session.scalars(
        select(MarketplaceFailedOrder)
        .where(MarketplaceFailedOrder.connection_id == connection_id)
        .order_by(MarketplaceFailedOrder.first_failed_at, MarketplaceFailedOrder.external_order_id)
        .limit(limit)
    )
    return rows.all()


async def failed_order_ids(
    session: AsyncSession, connection_id: uuid.UUID, limit: int
) -> list[str]:
    return [row.external_order_id for row in await failed_orders(session, connection_id, limit)]


async def count_failed_orders(session: AsyncSession, connection_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(MarketplaceFailedOrder)
        .where(MarketplaceFailedOrder.connection_id == connection_id)
    )
    return int(count or 0)
