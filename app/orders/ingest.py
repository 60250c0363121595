"""Writing normalized orders: the one code path for syncs and webhooks.

Upserts are idempotent on (connection_id, external_order_id). An order is overwritten only by a
newer platform update time, or by the same update time with different normalized content, so a
replayed webhook or a late page never brings an older state back. Line items are replaced with
their order in the same transaction."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

from sqlalchemy import Table, delete, func, literal_column, or_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import MarketplaceOrder, MarketplaceOrderItem
from app.platforms.types import NormalizedOrder

_ORDERS = cast(Table, MarketplaceOrder.__table__)
_ITEMS = cast(Table, MarketplaceOrderItem.__table__)


@dataclass(slots=True)
class IngestResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, other: IngestResult) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged


def _json_default(value: object) -> str:
    return str(value)  # Decimal, datetime and enums: their exact text


def content_hash(order: NormalizedOrder) -> bytes:
    """A digest of everything normalized (not the raw payload, whose noise we ignore)."""
    content = asdict(order)
    content.pop("raw", None)
    encoded = json.dumps(content, sort_keys=True, default=_json_default).encode()
    return hashlib.blake2b(encoded, digest_size=16).digest()


def _address(order: NormalizedOrder) -> dict[str, Any] | None:
    if order.shipping_address is None:
        return None
    return {k: v for k, v in asdict(order.shipping_address).items() if v is not None}


def _order_row(
    order: NormalizedOrder, connection_id: uuid.UUID, user_id: str, platform_code: str
) -> dict[str, Any]:
    return {
        "connection_id": connection_id,
        "user_id": user_id,
        "platform_code": platform_code,
        "external_order_id": order.external_order_id,
        "status": order.status.value,
        "raw_status": order.raw_status[:64],
        "buyer_name": order.buyer_name,
        "buyer_phone": order.buyer_phone,
        "buyer_email": order.buyer_email,
        "shipping_address": _address(order),
        "currency": order.currency,
        "subtotal": order.subtotal,
        "shipping_fee": order.shipping_fee,
        "discount": order.discount,
        "total": order.total,
        "payment_method": order.payment_method,
        "is_cod": order.is_cod,
        "order_created_at": order.created_at,
        "order_updated_at": order.updated_at,
        "paid_at": order.paid_at,
        "raw": order.raw,
        "content_hash": content_hash(order),
    }


_UPDATABLE = [
    c.name
    for c in _ORDERS.columns
    if c.name not in ("id", "connection_id", "external_order_id", "created_at", "user_id")
]


async def upsert_orders(
    session: AsyncSession,
    orders: Sequence[NormalizedOrder],
    *,
    connection_id: uuid.UUID,
    user_id: str,
    platform_code: str,
) -> IngestResult:
    """Write a batch; only flushes (the caller's edge commits)."""
    result = IngestResult()
    if not orders:
        return result
    # A page may repeat an order (a window boundary); the newest version wins within the batch.
    latest: dict[str, NormalizedOrder] = {}
    for order in orders:
        seen = latest.get(order.external_order_id)
        if seen is None or order.updated_at >= seen.updated_at:
            latest[order.external_order_id] = order
    rows = [_order_row(o, connection_id, user_id, platform_code) for o in latest.values()]
    base = insert(_ORDERS).values(rows)
    excluded = base.excluded
    statement = base.on_conflict_do_update(
        index_elements=["connection_id", "external_order_id"],
        set_={name: excluded[name] for name in _UPDATABLE} | {"updated_at": func.now()},
        where=or_(
            _ORDERS.c.order_updated_at < excluded.order_updated_at,
            (_ORDERS.c.order_updated_at == excluded.order_updated_at)
            & (_ORDERS.c.content_hash != excluded.content_hash),
        ),
    ).returning(
        _ORDERS.c.id,
        _ORDERS.c.external_order_id,
        # xmax is 0 only for a row version this statement inserted: created, not updated.
        literal_column("xmax = 0").label("inserted"),
    )
    written = (await session.execute(statement)).all()
    result.unchanged = len(latest) - len(written)
    result.created = sum(1 for row in written if row.inserted)
    result.updated = len(written) - result.created
    ids_by_external = {row.external_order_id: row.id for row in written}
    if ids_by_external:
        await session.execute(
            delete(_ITEMS).where(_ITEMS.c.order_id.in_(list(ids_by_external.values())))
        )
        item_rows = [
            {
                "order_id": ids_by_external[external_id],
                "line_no": line_no,
                "sku": item.sku,
                "name": item.name[:512],
                "variation": item.variation,
                "quantity": item.quantity,
                "unit_price": item.unit_price,
                "discount": item.discount,
                "external_item_id": item.external_item_id,
                "external_product_id": item.external_product_id,
            }
            for external_id in ids_by_external
            for line_no, item in enumerate(latest[external_id].items, start=1)
        ]
        if item_rows:
            await session.execute(insert(_ITEMS).values(item_rows))
    return result
