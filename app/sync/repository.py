from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import MarketplaceSyncLog


async def running_for_connection(
    session: AsyncSession, connection_id: uuid.UUID
) -> MarketplaceSyncLog | None:
    return await session.scalar(
        select(MarketplaceSyncLog).where(
            MarketplaceSyncLog.connection_id == connection_id,
            MarketplaceSyncLog.status == "running",
        )
    )


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


def connection_lock_key(connection_id: uuid.UUID) -> int:
    """A stable 63-bit advisory-lock key for "a sync of this connection is executing"."""
    return int.from_bytes(connection_id.bytes[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


async def runner_alive(session: AsyncSession, connection_id: uuid.UUID) -> bool:
    """Whether some process holds the connection's sync lock right now."""
    key = connection_lock_key(connection_id)
    held = await session.scalar(
        text(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
            "AND granted AND ((classid::bigint << 32) | objid::bigint) = :key)"
        ),
        {"key": key},
    )
    return bool(held)
