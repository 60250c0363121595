"""Queries of the fulfillment domain."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import MarketplaceOrder, OrderFulfillment

# The latest shipment of an order as JSON text, for the order rendering (app/orders): a failed
# attempt shows only when nothing better exists.
ORDER_FULFILLMENT_SQL = """(SELECT json_build_object('status', f.status,
      'trackingNumber', f.tracking_number, 'carrier', f.carrier, 'shippedAt', f.shipped_at)::text
      FROM order_fulfillments f WHERE f.order_id = {order}.id
      ORDER BY (f.status = 'failed'), f.created_at DESC, f.id DESC LIMIT 1)"""

# Everything waiting for one connection, claimed for `lease` seconds; rows another job holds
# (a live lease) are skipped, an expired lease is taken over.
_CLAIM = text(
    "UPDATE order_fulfillments SET lease_until = now() + make_interval(secs => :lease), "
    "attempts = attempts + 1, updated_at = now() WHERE id IN ("
    "SELECT id FROM order_fulfillments WHERE connection_id = :connection_id "
    "AND status = 'requested' AND (lease_until IS NULL OR lease_until < now()) "
    "ORDER BY created_at, id LIMIT :limit FOR UPDATE SKIP LOCKED) RETURNING id"
)

# Ships whose job is gone: a claim whose lease ran out (the worker died mid-ship), or a row
# never claimed long after its last change (its job was lost). One per connection is enough:
# the job claims everything waiting for that shop.
_STRANDED = text(
    "SELECT DISTINCT ON (connection_id) id FROM order_fulfillments WHERE status = 'requested' "
    "AND coalesce(lease_until, updated_at + make_interval(secs => :grace)) < now() "
    "ORDER BY connection_id, created_at, id"
)
# Shipped without a tracking number, not read for a while and with reads left.
_TRACKING_DUE = text(
    "SELECT id FROM order_fulfillments WHERE status = 'shipped' AND tracking_number IS NULL "
    "AND tracking_reads < :max_reads AND updated_at < now() - make_interval(secs => :grace) "
    "ORDER BY updated_at LIMIT 500"
)


async def stranded(session: AsyncSession, grace_seconds: float) -> list[uuid.UUID]:
    result = await session.execute(_STRANDED, {"grace": grace_seconds})
    return [row.id for row in result]


async def tracking_due(
    session: AsyncSession, max_reads: int, grace_seconds: float
) -> list[uuid.UUID]:
    result = await session.execute(_TRACKING_DUE, {"max_reads": max_reads, "grace": grace_seconds})
    return [row.id for row in result]


async def by_key(session: AsyncSession, user_id: str, key: str) -> OrderFulfillment | None:
    found: OrderFulfillment | None = await session.scalar(
        select(OrderFulfillment).where(
            OrderFulfillment.user_id == user_id, OrderFulfillment.idempotency_key == key
        )
    )
    return found


async def running(
    session: AsyncSession, order_ids: Sequence[int]
) -> dict[tuple[int, str], OrderFulfillment]:
    rows = await session.scalars(
        select(OrderFulfillment).where(
            OrderFulfillment.order_id.in_(order_ids), OrderFulfillment.status == "requested"
        )
    )
    return {(f.order_id, f.package_number or ""): f for f in rows}


async def orders_of(
    session: AsyncSession, user_id: str, order_ids: Sequence[int]
) -> dict[int, MarketplaceOrder]:
    rows = await session.scalars(
        select(MarketplaceOrder).where(
            MarketplaceOrder.id.in_(order_ids), MarketplaceOrder.user_id == user_id
        )
    )
    return {o.id: o for o in rows}


async def claim(
    session: AsyncSession, connection_id: uuid.UUID, lease_seconds: float, limit: int = 1000
) -> list[uuid.UUID]:
    result = await session.execute(
        _CLAIM, {"connection_id": connection_id, "lease": lease_seconds, "limit": limit}
    )
    return [row.id for row in result]


async def with_orders(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> list[tuple[OrderFulfillment, MarketplaceOrder]]:
    rows = await session.execute(
        select(OrderFulfillment, MarketplaceOrder)
        .join(MarketplaceOrder, MarketplaceOrder.id == OrderFulfillment.order_id)
        .where(OrderFulfillment.id.in_(ids))
        .order_by(OrderFulfillment.created_at, OrderFulfillment.id)
        # The claim changed attempts and lease in SQL: rows already loaded are read again.
        .execution_options(populate_existing=True)
    )
    return [(f, o) for f, o in rows]


async def page(
    session: AsyncSession,
    user_id: str,
    *,
    status: str | None,
    order_id: int | None,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
) -> list[OrderFulfillment]:
    query = select(OrderFulfillment).where(OrderFulfillment.user_id == user_id)
    if status is not None:
        query = query.where(OrderFulfillment.status == status)
    if order_id is not None:
        query = query.where(OrderFulfillment.order_id == order_id)
    if after is not None:
        from sqlalchemy import tuple_

        query = query.where(
            tuple_(OrderFulfillment.created_at, OrderFulfillment.id) < tuple_(*after)
        )
    query = query.order_by(OrderFulfillment.created_at.desc(), OrderFulfillment.id.desc())
    return list(await session.scalars(query.limit(limit + 1)))
