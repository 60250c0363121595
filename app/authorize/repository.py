"""Queries on the states of started authorization flows."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, func, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.connect_state import MarketplaceConnectState

# Expired states are kept this long (for support questions), then deleted by the next start.
KEEP_EXPIRED = timedelta(days=1)


async def add_state(session: AsyncSession, state: MarketplaceConnectState) -> None:
    session.add(state)
    await session.flush()


async def delete_expired(session: AsyncSession, now: datetime) -> None:
    await session.execute(
        delete(MarketplaceConnectState).where(
            MarketplaceConnectState.expires_at < now - KEEP_EXPIRED
        )
    )


async def consume_state(
    session: AsyncSession, state_id: uuid.UUID, platform_code: str
) -> MarketplaceConnectState | None:
    """Mark the state used and return it, or None when it is unknown, used or expired. One
    statement, so two callbacks racing with the same state cannot both win."""
    table = MarketplaceConnectState
    row = await session.execute(
        update(table)
        .where(
            table.id == state_id,
            table.platform_code == platform_code,
            table.used_at.is_(None),
            table.expires_at > func.now(),
        )
        .values(used_at=func.now())
        .returning(table)
        .execution_options(synchronize_session=False)
    )
    return row.scalar_one_or_none()
