from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import MarketplaceConnection, MarketplacePlatform


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
        query = query.where(MarketplaceConnection.status != "disconnected")
    result = await session.scalars(query.order_by(MarketplaceConnection.created_at))
    return result.all()


async def get_for_user(
    session: AsyncSession, user_id: str, connection_id: uuid.UUID, *, for_update: bool = False
) -> MarketplaceConnection | None:
    query = select(MarketplaceConnection).where(
        MarketplaceConnection.id == connection_id, MarketplaceConnection.user_id == user_id
    )
    if for_update:
        query = query.with_for_update()
    return await session.scalar(query)


async def find_by_shop(
    session: AsyncSession, user_id: str, platform_code: str, shop_id: str
) -> MarketplaceConnection | None:
    return await session.scalar(
        select(MarketplaceConnection)
        .where(
            MarketplaceConnection.user_id == user_id,
            MarketplaceConnection.platform_code == platform_code,
            MarketplaceConnection.shop_id == shop_id,
        )
        .with_for_update()
    )
