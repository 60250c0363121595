"""Writing normalized orders: the one code path for syncs and webhooks.

Upserts are idempotent on (connection_id, external_order_id). An order is overwritten only by a
newer platform update time, or by the same update time with different normalized content, so a
replayed webhook or a late page never brings an older state back. Line items are replaced with
their order in the same transaction, and so is the stock the written orders reserve or release
(`app.inventory.moves`): an order and its stock movement commit together or not at all."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.customers.tasks import REFRESH_JOB, refresh_dedupe_key
from app.inventory.moves import apply_orders
from app.jobs.outbox import enqueue
from app.platforms.types import Address, NormalizedOrder


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
    if isinstance(value, Decimal):
        return str(value)  # exact text, never a float
    raise TypeError(f"cannot serialize {type(value).__name__}")


_HASHED_FIELDS = tuple(f.name for f in fields(NormalizedOrder) if f.name != "raw")
_ADDRESS_FIELDS = tuple(f.name for f in fields(Address))


def content_hash(order: NormalizedOrder) -> bytes:
    """A digest of everything normalized (items included, the raw payload not: its noise is
    no change). orjson encodes the dataclasses, times and enums natively and fast."""
    content = [getattr(order, name) for name in _HASHED_FIELDS]
    return hashlib.blake2b(orjson.dumps(content, default=_json_default), digest_size=16).digest()


def _address(order: NormalizedOrder) -> dict[str, Any] | None:
    address = order.shipping_address
    if address is None:
        return None
    values = {name: getattr(address, name) for name in _ADDRESS_FIELDS}
    return {k: v for k, v in values.items() if v is not None}


# Columns written by an upsert, with the array type each is sent as. One statement with one
# array per column (unnest) is prepared once per connection, whatever the batch size; a
# multi-row VALUES statement would be compiled anew for every batch.
_ORDER_COLUMNS = (
    ("connection_id", "uuid"),
    ("user_id", "text"),
    ("platform_code", "text"),
    ("external_order_id", "text"),
    ("status", "text"),
    ("raw_status", "text"),
    ("buyer_name", "text"),
    ("buyer_phone", "text"),
    ("buyer_email", "text"),
    ("shipping_address", "jsonb"),
    ("currency", "text"),
    ("subtotal", "numeric"),
    ("shipping_fee", "numeric"),
    ("discount", "numeric"),
    ("total", "numeric"),
    ("payment_method", "text"),
    ("is_cod", "boolean"),
    ("order_created_at", "timestamptz"),
    ("order_updated_at", "timestamptz"),
    ("paid_at", "timestamptz"),
    ("raw", "jsonb"),
    ("content_hash", "bytea"),
)
_ITEM_COLUMNS = (
    ("order_id", "bigint"),
    ("line_no", "integer"),
    ("sku", "text"),
    ("name", "text"),
    ("variation", "text"),
    ("quantity", "integer"),
    ("unit_price", "numeric"),
    ("discount", "numeric"),
    ("external_item_id", "text"),
    ("external_product_id", "text"),
)
# Text travels exactly; numeric and jsonb are cast from text inside the statement.
_WIRE_TYPE = {"numeric": "text", "jsonb": "text"}


def _unnest(columns: tuple[tuple[str, str], ...]) -> tuple[str, str]:
    names = ", ".join(name for name, _ in columns)
    arrays = ", ".join(f"CAST(:{name} AS {_WIRE_TYPE.get(t, t)}[])" for name, t in columns)
    casts = ", ".join(f"{name}::{t}" if t in _WIRE_TYPE else name for name, t in columns)
    return names, f"SELECT {casts} FROM unnest({arrays}) AS u({names})"  # noqa: S608 - constants


def _upsert_sql() -> str:
    names, select = _unnest(_ORDER_COLUMNS)
    updatable = [n for n, _ in _ORDER_COLUMNS if n not in ("connection_id", "external_order_id")]
    assignments = ", ".join(f"{n} = EXCLUDED.{n}" for n in updatable)
    return (
        f"INSERT INTO marketplace_orders ({names}) {select} "
        "ON CONFLICT (connection_id, external_order_id) DO UPDATE SET "
        f"{assignments}, updated_at = now() "
        "WHERE marketplace_orders.order_updated_at < EXCLUDED.order_updated_at "
        "OR (marketplace_orders.order_updated_at = EXCLUDED.order_updated_at "
        "AND marketplace_orders.content_hash <> EXCLUDED.content_hash) "
        # xmax is 0 only for a row version this statement inserted: created, not updated.
        "RETURNING id, external_order_id, (xmax = 0) AS inserted"
    )


def _insert_items_sql() -> str:
    names, select = _unnest(_ITEM_COLUMNS)
    return f"INSERT INTO marketplace_order_items ({names}) {select}"


_UPSERT_ORDERS = text(_upsert_sql())
_DELETE_ITEMS = text(
    "DELETE FROM marketplace_order_items WHERE order_id = ANY(CAST(:ids AS bigint[]))"
)
_INSERT_ITEMS = text(_insert_items_sql())


def _dumps(value: Any) -> str | None:
    if value is None:
        return None
    return orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()


def _order_columns(
    orders: Sequence[NormalizedOrder], connection_id: uuid.UUID, user_id: str, platform_code: str
) -> dict[str, list[Any]]:
    return {
        "connection_id": [connection_id] * len(orders),
        "user_id": [user_id] * len(orders),
        "platform_code": [platform_code] * len(orders),
        "external_order_id": [o.external_order_id for o in orders],
        "status": [o.status.value for o in orders],
        "raw_status": [o.raw_status[:64] for o in orders],
        "buyer_name": [o.buyer_name for o in orders],
        "buyer_phone": [o.buyer_phone for o in orders],
        "buyer_email": [o.buyer_email for o in orders],
        "shipping_address": [_dumps(_address(o)) for o in orders],
        "currency": [o.currency for o in orders],
        "subtotal": [str(o.subtotal) for o in orders],
        "shipping_fee": [str(o.shipping_fee) for o in orders],
        "discount": [str(o.discount) for o in orders],
        "total": [str(o.total) for o in orders],
        "payment_method": [o.payment_method for o in orders],
        "is_cod": [o.is_cod for o in orders],
        "order_created_at": [o.created_at for o in orders],
        "order_updated_at": [o.updated_at for o in orders],
        "paid_at": [o.paid_at for o in orders],
        "raw": [_dumps(o.raw) for o in orders],
        "content_hash": [content_hash(o) for o in orders],
    }


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
    # A page may repeat an order (a window boundary); the newest version wins within the batch,
    # since one INSERT .. ON CONFLICT may not touch a row twice.
    latest: dict[str, NormalizedOrder] = {}
    for order in orders:
        seen = latest.get(order.external_order_id)
        if seen is None or order.updated_at >= seen.updated_at:
            latest[order.external_order_id] = order
    batch = list(latest.values())
    written = (
        await session.execute(
            _UPSERT_ORDERS, _order_columns(batch, connection_id, user_id, platform_code)
        )
    ).all()
    result.unchanged = len(batch) - len(written)
    result.created = sum(1 for row in written if row.inserted)
    result.updated = len(written) - result.created
    if not written:
        return result
    ids_by_external = {row.external_order_id: row.id for row in written}
    replaced = [row.id for row in written if not row.inserted]
    if replaced:
        await session.execute(_DELETE_ITEMS, {"ids": replaced})
    items: dict[str, list[Any]] = {name: [] for name, _ in _ITEM_COLUMNS}
    for external_id, order_id in ids_by_external.items():
        for line_no, item in enumerate(latest[external_id].items, start=1):
            items["order_id"].append(order_id)
            items["line_no"].append(line_no)
            items["sku"].append(item.sku)
            items["name"].append(item.name[:512])
            items["variation"].append(item.variation)
            items["quantity"].append(item.quantity)
            items["unit_price"].append(str(item.unit_price))
            items["discount"].append(str(item.discount))
            items["external_item_id"].append(item.external_item_id)
            items["external_product_id"].append(item.external_product_id)
    if items["order_id"]:
        await session.execute(_INSERT_ITEMS, items)
    await apply_orders(
        session,
        [(order_id, latest[external_id]) for external_id, order_id in ids_by_external.items()],
        connection_id=connection_id,
        user_id=user_id,
        platform_code=platform_code,
    )
    enqueue(session, REFRESH_JOB, str(connection_id), dedupe_key=refresh_dedupe_key(connection_id))
    return result
