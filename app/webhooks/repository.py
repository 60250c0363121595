"""Webhook inbox queries. The receive path is hot (a marketplace waits on it): its two
statements are plain SQL on indexed keys, the owners of a shop and one insert-if-new. The drain
claims, renews and finishes events in bulk, one statement each."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import MarketplaceConnection, MarketplaceWebhook


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


_INSERT = text(
    "INSERT INTO marketplace_webhooks "
    "(platform_code, user_id, connection_id, event_type, dedupe_key, payload) "
    "SELECT platform_code, user_id, connection_id, event_type, dedupe_key, payload::jsonb "
    "FROM unnest(CAST(:platform_code AS text[]), CAST(:user_id AS text[]), "
    "CAST(:connection_id AS uuid[]), CAST(:event_type AS text[]), CAST(:dedupe_key AS text[]), "
    "CAST(:payload AS text[])) "
    "AS u(platform_code, user_id, connection_id, event_type, dedupe_key, payload) "
    "ON CONFLICT (connection_id, dedupe_key) DO NOTHING RETURNING id, connection_id"
)


async def insert_new(
    session: AsyncSession, events: Sequence[NewEvent]
) -> list[tuple[int, uuid.UUID]]:
    """Insert the events not stored yet, in the session's transaction (one statement);
    returns (id, connection id) of those that were new."""
    if not events:
        return []
    rows = await session.execute(
        _INSERT,
        {
            "platform_code": [e.platform_code for e in events],
            "user_id": [e.user_id for e in events],
            "connection_id": [e.connection_id for e in events],
            "event_type": [e.event_type for e in events],
            "dedupe_key": [e.dedupe_key[:255] for e in events],
            "payload": [orjson.dumps(e.payload).decode() for e in events],
        },
    )
    return [(int(row.id), row.connection_id) for row in rows]


@dataclass(slots=True)
class Claimed:
    """An event taken by one drain pass: nobody else takes it before `lease` ends."""

    id: int
    platform_code: str
    event_type: str
    payload: dict[str, Any]
    attempts: int


# Waiting events of one connection, oldest first, due now (`next_attempt_at` is both the
# back-off of a failed try and the lease of a claim); rows another pass holds are skipped.
_CLAIM = text(
    "UPDATE marketplace_webhooks w SET next_attempt_at = :lease "
    "FROM (SELECT id FROM marketplace_webhooks WHERE connection_id = :connection_id "
    "AND status = 'received' AND next_attempt_at <= now() "
    "AND NOT (id = ANY(CAST(:taken AS bigint[]))) ORDER BY id LIMIT :limit "
    "FOR UPDATE SKIP LOCKED) AS c "
    "WHERE w.id = c.id RETURNING w.id, w.platform_code, w.event_type, w.payload, w.attempts"
)


async def claim(
    session: AsyncSession,
    connection_id: uuid.UUID,
    limit: int,
    lease: datetime,
    taken: Sequence[int] = (),
) -> list[Claimed]:
    """Up to `limit` due events, leased until `lease`; `taken` (tried by this drain already)
    are left to their retry."""
    rows = await session.execute(
        _CLAIM,
        {"connection_id": connection_id, "limit": limit, "lease": lease, "taken": list(taken)},
    )
    claimed = [
        Claimed(row.id, row.platform_code, row.event_type, row.payload, row.attempts)
        for row in rows
    ]
    claimed.sort(key=lambda c: c.id)
    return claimed


async def renew(
    session: AsyncSession, webhook_ids: Sequence[int], lease: datetime, until: datetime
) -> None:
    """Extend the claim of the events still held under `lease`."""
    await session.execute(
        update(MarketplaceWebhook)
        .where(
            MarketplaceWebhook.id.in_(webhook_ids),
            MarketplaceWebhook.status == "received",
            MarketplaceWebhook.next_attempt_at == lease,
        )
        .values(next_attempt_at=until)
    )


async def lock_held(session: AsyncSession, webhook_ids: Sequence[int], lease: datetime) -> set[int]:
    """The events still held under `lease`, row-locked for the write (a lease that ran out may
    have let another pass take one)."""
    ids = await session.scalars(
        select(MarketplaceWebhook.id)
        .where(
            MarketplaceWebhook.id.in_(webhook_ids),
            MarketplaceWebhook.status == "received",
            MarketplaceWebhook.next_attempt_at == lease,
        )
        .with_for_update()
    )
    return set(ids)


@dataclass(frozen=True, slots=True)
class Outcome:
    webhook_id: int
    status: str  # "received" again (a retry is due at `due`), or final
    message: str | None
    due: datetime | None = None


_FINISH = text(
    "UPDATE marketplace_webhooks w SET status = u.status, attempts = w.attempts + 1, "
    "error_message = u.message, "
    "processed_at = CASE WHEN u.status = 'received' THEN NULL ELSE now() END, "
    "next_attempt_at = COALESCE(u.due, w.next_attempt_at) "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS text[]), CAST(:messages AS text[]), "
    "CAST(:dues AS timestamptz[])) AS u(id, status, message, due) WHERE w.id = u.id"
)


async def finish(session: AsyncSession, outcomes: Sequence[Outcome]) -> None:
    """Record every event's outcome in one statement (the rows are locked by `lock_held`)."""
    if not outcomes:
        return
    await session.execute(
        _FINISH,
        {
            "ids": [o.webhook_id for o in outcomes],
            "statuses": [o.status for o in outcomes],
            "messages": [o.message[:1000] if o.message else None for o in outcomes],
            "dues": [o.due for o in outcomes],
        },
    )


async def connection(
    session: AsyncSession, connection_id: uuid.UUID | None
) -> MarketplaceConnection | None:
    if connection_id is None:
        return None
    return await session.get(MarketplaceConnection, connection_id)


async def due_connections(
    session: AsyncSession, older_than: datetime, limit: int
) -> list[uuid.UUID]:
    """Connections with an event still waiting past its time: stored while the queue was down,
    backing off, or claimed by a worker that died (its lease ran out)."""
    ids = await session.scalars(
        select(MarketplaceWebhook.connection_id)
        .where(
            MarketplaceWebhook.status == "received",
            MarketplaceWebhook.next_attempt_at < older_than,
            MarketplaceWebhook.connection_id.is_not(None),
        )
        .group_by(MarketplaceWebhook.connection_id)
        .order_by(func.min(MarketplaceWebhook.next_attempt_at))
        .limit(limit)
    )
    return [i for i in ids if i is not None]


async def ignore_orphans(session: AsyncSession, note: str) -> int:
    """Events whose connection was deleted: nobody will drain them."""
    result = await session.execute(
        update(MarketplaceWebhook)
        .where(MarketplaceWebhook.status == "received", MarketplaceWebhook.connection_id.is_(None))
        .values(status="ignored", error_message=note, processed_at=func.now())
    )
    return int(getattr(result, "rowcount", 0) or 0)


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
