"""Listing and reading orders: parameter checks, opaque keyset cursors, the unified shape."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFoundError, ValidationFailed
from app.orders import repository
from app.orders.repository import OrderFilter, PageRequest
from app.orders.schemas import (
    OrderDetailOut,
    OrderListResponse,
    OrderOut,
    OrderSort,
    Pagination,
)
from app.platforms.types import OrderStatus

_CURSOR_VERSION = 1
_STATUSES = {s.value for s in OrderStatus}


def invalid(parameter: str, message: str) -> ValidationFailed:
    """A 422 in the same shape as FastAPI's own parameter errors."""
    return ValidationFailed(
        f"Invalid request: {parameter}", fields=[{"field": parameter, "message": message}]
    )


def parse_statuses(values: Sequence[str] | None) -> list[str]:
    """`status=a&status=b` and `status=a,b` both work; unknown values are a 422."""
    statuses: list[str] = []
    for value in values or ():
        for part in value.split(","):
            status = part.strip().lower()
            if not status:
                continue
            if status not in _STATUSES:
                raise invalid(
                    "status",
                    f"Unknown status '{part.strip()[:40]}'; expected any of "
                    + ", ".join(s.value for s in OrderStatus),
                )
            if status not in statuses:
                statuses.append(status)
    return statuses


def as_utc(value: datetime | None) -> datetime | None:
    """Naive times are UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def check_created_range(created_from: datetime | None, created_to: datetime | None) -> None:
    if created_from is not None and created_to is not None and created_from > created_to:
        raise invalid("createdFrom", "createdFrom must not be later than createdTo")


def _sort_key_kind(sort: OrderSort) -> str:
    return "money" if sort in (OrderSort.TOTAL_DESC, OrderSort.TOTAL_ASC) else "time"


def encode_cursor(sort: OrderSort, key: datetime | Decimal, order_id: int) -> str:
    text = key.isoformat() if isinstance(key, datetime) else str(key)
    payload = json.dumps([_CURSOR_VERSION, sort.value, text, order_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str, sort: OrderSort) -> tuple[datetime | Decimal, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        version, cursor_sort, text, order_id = json.loads(base64.urlsafe_b64decode(padded))
        if version != _CURSOR_VERSION or not isinstance(text, str):
            raise ValueError("unknown cursor version")
        if type(order_id) is not int or not 0 < order_id < 2**63:
            raise ValueError("bad id")
        key: datetime | Decimal
        if _sort_key_kind(OrderSort(cursor_sort)) == "money":
            key = Decimal(text)
            if not key.is_finite():
                raise ValueError("bad amount")
        else:
            key = datetime.fromisoformat(text)
            if key.tzinfo is None:
                raise ValueError("naive time")
    except (ValueError, TypeError, binascii.Error, InvalidOperation, UnicodeDecodeError) as exc:
        raise invalid("cursor", "Malformed cursor; pass nextCursor from a previous page") from exc
    if cursor_sort != sort.value:
        raise invalid(
            "cursor", f"This cursor belongs to sort={cursor_sort}; repeat that sort or start over"
        )
    return key, order_id


@dataclass(slots=True)
class ListParams:
    filter: OrderFilter
    sort: OrderSort
    limit: int
    offset: int
    cursor: str | None
    include_total: bool = True


def _address(value: dict[str, Any] | None) -> dict[str, Any] | None:
    return value


def _item(row: Any) -> dict[str, Any]:
    return {
        "sku": row.sku,
        "name": row.name,
        "variation": row.variation,
        "quantity": row.quantity,
        "unit_price": row.unit_price,
        "discount": row.discount,
        "external_item_id": row.external_item_id,
        "external_product_id": row.external_product_id,
    }


def _order(row: Any, items: list[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "connection_id": row.connection_id,
        "platform_code": row.platform_code,
        "external_order_id": row.external_order_id,
        "status": row.status,
        "raw_status": row.raw_status,
        "buyer_name": row.buyer_name,
        "buyer_phone": row.buyer_phone,
        "buyer_email": row.buyer_email,
        "shipping_address": row.shipping_address,
        "currency": row.currency,
        "subtotal": row.subtotal,
        "shipping_fee": row.shipping_fee,
        "discount": row.discount,
        "total": row.total,
        "payment_method": row.payment_method,
        "is_cod": row.is_cod,
        "created_at": row.order_created_at,
        "updated_at": row.order_updated_at,
        "paid_at": row.paid_at,
        "synced_at": row.updated_at,
        "items": [_item(item) for item in items],
    }


_SORT_ATTR = {
    OrderSort.CREATED_DESC: "order_created_at",
    OrderSort.CREATED_ASC: "order_created_at",
    OrderSort.UPDATED_DESC: "order_updated_at",
    OrderSort.UPDATED_ASC: "order_updated_at",
    OrderSort.TOTAL_DESC: "total",
    OrderSort.TOTAL_ASC: "total",
}


async def list_orders(session: AsyncSession, params: ListParams) -> OrderListResponse:
    if params.cursor is not None and params.offset:
        raise invalid("cursor", "Use either cursor or offset, not both")
    after = decode_cursor(params.cursor, params.sort) if params.cursor is not None else None
    page = await repository.list_page(
        session,
        params.filter,
        PageRequest(sort=params.sort, limit=params.limit, offset=params.offset, after=after),
    )
    next_cursor = None
    if page.has_more and page.rows:
        last = page.rows[-1]
        next_cursor = encode_cursor(params.sort, getattr(last, _SORT_ATTR[params.sort]), last.id)
    total = await repository.count(session, params.filter) if params.include_total else None
    return OrderListResponse(
        data=[OrderOut.model_validate(_order(row, page.items[row.id])) for row in page.rows],
        pagination=Pagination(
            total=total, limit=params.limit, offset=params.offset, next_cursor=next_cursor
        ),
    )


async def get_order(session: AsyncSession, user_id: str, order_id: int) -> OrderDetailOut:
    row = await repository.get_for_user(session, user_id, order_id)
    if row is None:
        raise NotFoundError("Order not found")
    items = await repository.items_for(session, [row.id])
    return OrderDetailOut.model_validate({**_order(row, items[row.id]), "raw": row.raw})
