"""Webhook inbox queries. The receive path is hot (a marketplace waits on it): its two
statements are plain SQL on indexed keys, the owners of a shop and one insert-if-new."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import MarketplaceConnection, MarketplaceWebhook
from app.orders.repository import fetch


@dataclass(frozen=True, slots=True)
class ShopOwner:
    connection_id: uuid.UUID
    user_id: str
    shop_id: str
    api_key_encrypted: str
    api_secret_encrypted: str


# On the session's asyncpg connection: these two run for every push, and SQLAlchemy's
# statement and row layers would cost more CPU than PostgreSQL spends on them.
_OWNERS = (
    "SELECT id, user_id, shop_id, api_key_encrypted, api_secret_encrypted "
    "FROM marketplace_connections "
    "WHERE platform_code = $1 AND shop_id = ANY($2::text[]) "
    "AND status <> 'disconnected' AND is_active"
)


async def shop_owners(driver: Any, platform: str, shop_ids: Sequence[str]) -> list[ShopOwner]:
    """`driver`: an asyncpg connection (the receive path runs outside any transaction)."""
    rows = await driver.fetch(_OWNERS, platform, list(shop_ids))
    return [ShopOwner(*row) for row in rows]


async def shop_owners_of_platform(session: AsyncSession, platform: str) -> list[ShopOwner]:
    """Every live connection of a platform (the lost-push job asks per partner app)."""
    rows = await session.execute(
        text(
            "SELECT id, user_id, shop_id, api_key_encrypted, api_secret_encrypted "
            "FROM marketplace_connections WHERE platform_code = :platform "
            "AND status <> 'disconnected' AND is_active"
        ),
        {"platform": platform},
    )
    return [ShopOwner(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class NewEvent:
    platform_code: str
    user_id: str
    connection_id: uuid.UUID
    event_type: str
    dedupe_key: str
    payload: dict[str, Any]


_INSERT = (
    "INSERT INTO marketplace_webhooks "
    "(platform_code, user_id, connection_id, event_type, dedupe_key, payload) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[], $4::text[], $5::text[], "
    "$6::jsonb[]) "
    "ON CONFLICT (connection_id, dedupe_key) DO NOTHING RETURNING id"
)


def _insert_args(events: Sequence[NewEvent]) -> list[Any]:
    return [
        [e.platform_code for e in events],
        [e.user_id for e in events],
        [e.connection_id for e in events],
        [e.event_type for e in events],
        [e.dedupe_key[:255] for e in events],
        [orjson.dumps(e.payload).decode() for e in events],
    ]


async def insert_new(driver: Any, events: Sequence[NewEvent]) -> list[int]:
    """Insert the events not stored yet (one statement, so one commit on an autocommit
    connection); returns the ids of those that were new."""
    if not events:
        return []
    rows = await driver.fetch(_INSERT, *_insert_args(events))
    return [int(row[0]) for row in rows]


async def insert_new_in(session: AsyncSession, events: Sequence[NewEvent]) -> list[int]:
    """`insert_new` inside the session's transaction."""
    if not events:
        return []
    rows = await fetch(session, _INSERT, _insert_args(events))
    return [int(row[0]) for row in rows]


async def lock_received(session: AsyncSession, webhook_id: int) -> MarketplaceWebhook | None:
    """The event, row-locked, if it still waits for processing and no one else holds it."""
    row: MarketplaceWebhook | None = await session.scalar(
        select(MarketplaceWebhook)
        .where(MarketplaceWebhook.id == webhook_id, MarketplaceWebhook.status == "received")
        .with_for_update(skip_locked=True)
    )
    return row


async def lock_waiting_batch(
    session: AsyncSession,
    first: MarketplaceWebhook,
    event_types: Collection[str],
    limit: int,
    *,
    next_attempt_by: datetime,
) -> list[MarketplaceWebhook]:
    """Other events of `first`'s connection of the given types that wait and are due by
    `next_attempt_by`, oldest first, row-locked; rows another job holds are left to it."""
    if not event_types or limit <= 0 or first.connection_id is None:
        return []
    rows = await session.scalars(
        select(MarketplaceWebhook)
        .where(
            MarketplaceWebhook.connection_id == first.connection_id,
            MarketplaceWebhook.status == "received",
            MarketplaceWebhook.id != first.id,
            MarketplaceWebhook.event_type.in_(list(event_types)),
            MarketplaceWebhook.next_attempt_at <= next_attempt_by,
        )
        .order_by(MarketplaceWebhook.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(rows)


async def connection(
    session: AsyncSession, connection_id: uuid.UUID | None
) -> MarketplaceConnection | None:
    if connection_id is None:
        return None
    return await session.get(MarketplaceConnection, connection_id)


async def due_for_sweep(session: AsyncSession, older_than: datetime, limit: int) -> list[int]:
    ids = await session.scalars(
        select(MarketplaceWebhook.id)
        .where(
            MarketplaceWebhook.status == "received",
            MarketplaceWebhook.next_attempt_at < older_than,
        )
        .order_by(MarketplaceWebhook.next_attempt_at)
        .limit(limit)
    )
    return list(ids)


async def push_back(session: AsyncSession, webhook_ids: Sequence[int], until: datetime) -> None:
    """Not due again before `until` (the sweeper just queued them)."""
    await session.execute(
        update(MarketplaceWebhook)
        .where(MarketplaceWebhook.id.in_(webhook_ids))
        .values(next_attempt_at=until)
    )


async def list_events(
    session: AsyncSession,
    user_id: str,
    *,
    connection_id: uuid.UUID | None,
    status: str | None,
    before_id: int | None,
    limit: int,
) -> list[MarketplaceWebhook]:
    query = select(MarketplaceWebhook).where(MarketplaceWebhook.user_id == user_id)
    if connection_id is not None:
        query = query.where(MarketplaceWebhook.connection_id == connection_id)
    if status is not None:
        query = query.where(MarketplaceWebhook.status == status)
    if before_id is not None:
        query = query.where(MarketplaceWebhook.id < before_id)
    rows = await session.scalars(query.order_by(MarketplaceWebhook.id.desc()).limit(limit))
    return list(rows)


async def owned_event(
    session: AsyncSession, user_id: str, webhook_id: int, *, lock: bool = False
) -> MarketplaceWebhook | None:
    query = select(MarketplaceWebhook).where(
        MarketplaceWebhook.id == webhook_id, MarketplaceWebhook.user_id == user_id
    )
    if lock:
        query = query.with_for_update()
    row: MarketplaceWebhook | None = await session.scalar(query)
    return row
