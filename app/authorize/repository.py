"""Queries on the states of started authorization flows and the grants of finished ones."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, func, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.connect_grant import MarketplaceConnectGrant
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


async def add_grant(session: AsyncSession, grant: MarketplaceConnectGrant) -> None:
    session.add(grant)
    await session.flush()


async def delete_expired_grants(session: AsyncSession, now: datetime) -> None:
    await session.execute(
        delete(MarketplaceConnectGrant).where(MarketplaceConnectGrant.expires_at < now)
    )


async def take_grant(session: AsyncSession, grant_hash: str) -> MarketplaceConnectGrant | None:
    """Delete the grant and return it (expired or not): a grant is used at most once, and two
    completions racing with it cannot both have it."""
    row = await session.execute(
        delete(MarketplaceConnectGrant)
        .where(MarketplaceConnectGrant.grant_hash == grant_hash)
        .returning(MarketplaceConnectGrant)
        .execution_options(synchronize_session=False)
    )
    return row.scalar_one_or_none()
