from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts import service as alerts
from app.models import MarketplaceConnection, MarketplacePlatform
from app.models.enums import ConnectionStatus
from app.platforms.errors import (
    AuthError,
    HostNotConfigured,
    MarketplaceError,
    PermanentError,
    ReauthRequiredError,
)

# How long a transaction waits for a connection's row lock before giving up (and answering
# 503 or retrying the job) instead of queueing behind a slow holder.
LOCK_TIMEOUT = "5s"


async def list_platforms(session: AsyncSession) -> Sequence[MarketplacePlatform]:
    result = await session.scalars(select(MarketplacePlatform).order_by(MarketplacePlatform.id))
    return result.all()


async def get_platform(session: AsyncSession, code: str) -> MarketplacePlatform | None:
    return await session.scalar(select(MarketplacePlatform).where(MarketplacePlatform.code == code))


async def list_for_user(
    session: AsyncSession, user_id: str, *, include_disconnected: bool
) -> Sequence[MarketplaceConnection]:
    query = select(MarketplaceConnection).where(MarketplaceConnection.user_id == user_id)
    if not include_disconnected:
        query = query.where(MarketplaceConnection.status != ConnectionStatus.DISCONNECTED)
    result = await session.scalars(query.order_by(MarketplaceConnection.created_at))
    return result.all()


async def get_for_user(
    session: AsyncSession, user_id: str, connection_id: uuid.UUID, *, for_update: bool = False
) -> MarketplaceConnection | None:
    query = select(MarketplaceConnection).where(
        MarketplaceConnection.id == connection_id, MarketplaceConnection.user_id == user_id
    )
    if for_update:
        await set_lock_timeout(session)
        query = query.with_for_update().execution_options(populate_existing=True)
    return await session.scalar(query)


async def find_by_shop(
    session: AsyncSession, user_id: str, platform_code: str, shop_id: str
) -> MarketplaceConnection | None:
    return await session.scalar(
        select(MarketplaceConnection).where(
            MarketplaceConnection.user_id == user_id,
            MarketplaceConnection.platform_code == platform_code,
            MarketplaceConnection.shop_id == shop_id,
        )
    )


async def get_for_update(
    session: AsyncSession, connection_id: uuid.UUID
) -> MarketplaceConnection | None:
    """The row under `FOR UPDATE`, waiting at most `LOCK_TIMEOUT` for another holder: callers
    keep the lock for one short step, never across more than one marketplace attempt."""
    await set_lock_timeout(session)
    return await session.scalar(
        select(MarketplaceConnection)
        .where(MarketplaceConnection.id == connection_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def set_lock_timeout(session: AsyncSession) -> None:
    await session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))


async def mark_status(
    session: AsyncSession,
    connection_id: uuid.UUID,
    status: ConnectionStatus,
    reason: str | None,
) -> None:
    """Set only the status columns, so tokens refreshed meanwhile by another transaction are
    never overwritten with a stale copy. A move into `reauth_required` or `error` raises its
    alert in the same transaction (the row lock makes it one alert per move)."""
    previous = await session.scalar(
        select(MarketplaceConnection.status)
        .where(
            MarketplaceConnection.id == connection_id,
            # Disconnecting is the seller's word; a sync finishing later must not undo it.
            MarketplaceConnection.status != ConnectionStatus.DISCONNECTED,
        )
        .with_for_update()
    )
    if previous is None:
        return
    changed = (
        await session.execute(
            update(MarketplaceConnection)
            .where(MarketplaceConnection.id == connection_id)
            .values(status=status, status_reason=reason, updated_at=func.now())
            .returning(MarketplaceConnection.platform_code, MarketplaceConnection.updated_at)
        )
    ).one()
    if previous != status:
        await alerts.alert_status_change(
            session,
            connection_id=connection_id,
            platform_code=changed.platform_code,
            status=status,
            reason=reason,
            changed_at=changed.updated_at,
        )


def status_for_failure(error: MarketplaceError) -> ConnectionStatus | None:
    """The connection status a failed marketplace call calls for (None: leave it)."""
    if isinstance(error, HostNotConfigured):
        return ConnectionStatus.MISCONFIGURED
    if isinstance(error, ReauthRequiredError):
        return ConnectionStatus.REAUTH_REQUIRED
    if isinstance(error, AuthError | PermanentError):
        return ConnectionStatus.ERROR
    return None


async def advance_high_water_mark(
    session: AsyncSession, connection_id: uuid.UUID, mark: datetime
) -> None:
    """Move the mark up to `mark`, never down (two runs may commit out of order)."""
    await session.execute(
        update(MarketplaceConnection)
        .where(MarketplaceConnection.id == connection_id)
        .values(
            orders_high_water_mark=func.greatest(
                func.coalesce(MarketplaceConnection.orders_high_water_mark, mark), mark
            )
        )
    )


async def record_sync_finished(
    session: AsyncSession, connection_id: uuid.UUID, finished_at: datetime
) -> None:
    await session.execute(
        update(MarketplaceConnection)
        .where(MarketplaceConnection.id == connection_id)
        .values(last_sync_at=finished_at)
    )
