"""Buyer data queries: the orders one buyer placed with a user, and the erasure batches."""

# SQL text here is assembled from constant fragments only; every value is a bind parameter.
# ruff: noqa: S608

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.order import HOLDS_BUYER_DATA_SQL
from app.orders.repository import ITEMS, ORDER_COLUMNS, WAITLIST, fetch

# Same expression as the index on (user_id, buyer_phone_key(buyer_phone)), so the export is
# one index probe; the parameter is normalized by the same SQL function as the stored phones.
_ORDERS_OF_BUYER = (
    f"SELECT {ORDER_COLUMNS}, {ITEMS.format(order='o')} AS items, "
    f"{WAITLIST.format(order='o')} AS waitlist, o.raw::text AS raw "
    "FROM marketplace_orders o "
    "WHERE o.user_id = $1 AND buyer_phone_key(o.buyer_phone) = buyer_phone_key($2) "
    "ORDER BY o.order_created_at, o.id"
)

# Rows are locked so a sync writing the same order waits or is waited for, never interleaves.
# The retention job skips rows a sync holds (the next run takes them); a disconnect waits.
_EXPIRED_BATCH = text(
    "SELECT id, platform_code, raw::text AS raw FROM marketplace_orders "
    f"WHERE order_created_at < :before AND ({HOLDS_BUYER_DATA_SQL}) "
    "ORDER BY order_created_at LIMIT :limit FOR UPDATE SKIP LOCKED"
)
_CONNECTION_BATCH = text(
    "SELECT id, platform_code, raw::text AS raw FROM marketplace_orders "
    f"WHERE connection_id = :connection_id AND ({HOLDS_BUYER_DATA_SQL}) "
    "ORDER BY id LIMIT :limit FOR UPDATE"
)
_ORDERS_BATCH = text(
    "SELECT id, platform_code, raw::text AS raw FROM marketplace_orders "
    f"WHERE id = ANY(CAST(:ids AS bigint[])) AND ({HOLDS_BUYER_DATA_SQL}) "
    "ORDER BY id FOR UPDATE"
)
_ERASE = text(
    "UPDATE marketplace_orders AS o SET buyer_name = NULL, buyer_phone = NULL, "
    "buyer_email = NULL, shipping_address = NULL, raw = CAST(u.raw AS jsonb), "
    "buyer_erased_at = now(), updated_at = now() "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:raws AS text[])) AS u(id, raw) "
    "WHERE o.id = u.id"
)


async def orders_of_buyer(session: AsyncSession, user_id: str, phone: str) -> list[Any]:
    """Every order of the user whose buyer phone is this number, oldest first, with items and
    the raw payload (one statement)."""
    return await fetch(session, _ORDERS_OF_BUYER, [user_id, phone])


async def expired_batch(session: AsyncSession, before: datetime, limit: int) -> Sequence[Any]:
    """Up to `limit` orders placed before `before` that still hold buyer data, locked."""
    result = await session.execute(_EXPIRED_BATCH, {"before": before, "limit": limit})
    return result.all()


async def connection_batch(
    session: AsyncSession, connection_id: uuid.UUID, limit: int
) -> Sequence[Any]:
    """Up to `limit` orders of the connection that still hold buyer data, locked."""
    result = await session.execute(
        _CONNECTION_BATCH, {"connection_id": connection_id, "limit": limit}
    )
    return result.all()


async def orders_batch(session: AsyncSession, order_ids: Sequence[int]) -> Sequence[Any]:
    """These orders, those still holding buyer data, locked."""
    result = await session.execute(_ORDERS_BATCH, {"ids": list(order_ids)})
    return result.all()


async def erase(session: AsyncSession, ids: Sequence[int], raws: Sequence[str]) -> None:
    """Clear the buyer columns of these orders and store their erased raw payloads."""
    await session.execute(_ERASE, {"ids": list(ids), "raws": list(raws)})
