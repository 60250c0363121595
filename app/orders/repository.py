"""Order queries. Every list query starts with `user_id = ...` and orders by an indexed key plus
`id`, so a page is one index range scan however many orders the user has."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    and_,
    any_,
    bindparam,
    func,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import MarketplaceOrder, MarketplaceOrderItem
from app.orders.schemas import OrderSort

_O = MarketplaceOrder.__table__.c
_I = MarketplaceOrderItem.__table__.c

SORT_KEYS: dict[OrderSort, tuple[ColumnElement[Any], bool]] = {
    OrderSort.CREATED_DESC: (_O.order_created_at, True),
    OrderSort.CREATED_ASC: (_O.order_created_at, False),
    OrderSort.UPDATED_DESC: (_O.order_updated_at, True),
    OrderSort.UPDATED_ASC: (_O.order_updated_at, False),
    OrderSort.TOTAL_DESC: (_O.total, True),
    OrderSort.TOTAL_ASC: (_O.total, False),
}

# Columns of the list shape: the raw payload and the content hash stay in the table.
LIST_COLUMNS = (
    _O.id,
    _O.connection_id,
    _O.platform_code,
    _O.external_order_id,
    _O.status,
    _O.raw_status,
    _O.buyer_name,
    _O.buyer_phone,
    _O.buyer_email,
    _O.shipping_address,
    _O.currency,
    _O.subtotal,
    _O.shipping_fee,
    _O.discount,
    _O.total,
    _O.payment_method,
    _O.is_cod,
    _O.order_created_at,
    _O.order_updated_at,
    _O.paid_at,
    _O.updated_at,
)
ITEM_COLUMNS = (
    _I.order_id,
    _I.sku,
    _I.name,
    _I.variation,
    _I.quantity,
    _I.unit_price,
    _I.discount,
    _I.external_item_id,
    _I.external_product_id,
)

_NON_DIGITS = re.compile(r"\D")
# Fewer digits than this match too many phone numbers to be a useful search.
_MIN_PHONE_DIGITS = 4


@dataclass(slots=True)
class OrderFilter:
    user_id: str
    platform_code: str | None = None
    connection_id: uuid.UUID | None = None
    statuses: Sequence[str] = ()
    created_from: datetime | None = None
    created_to: datetime | None = None
    q: str | None = None


@dataclass(slots=True)
class PageRequest:
    sort: OrderSort = OrderSort.CREATED_DESC
    limit: int = 50
    offset: int = 0
    # The (sort key, id) of the last row of the previous page, for keyset paging.
    after: tuple[datetime | Decimal, int] | None = None


@dataclass(slots=True)
class OrderPage:
    rows: Sequence[Any]
    items: dict[int, list[Any]] = field(default_factory=dict)
    has_more: bool = False


def _conditions(flt: OrderFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [_O.user_id == flt.user_id]
    if flt.platform_code is not None:
        conditions.append(_O.platform_code == flt.platform_code)
    if flt.connection_id is not None:
        conditions.append(_O.connection_id == flt.connection_id)
    if len(flt.statuses) == 1:
        conditions.append(_O.status == flt.statuses[0])
    elif flt.statuses:
        conditions.append(_O.status.in_(list(flt.statuses)))
    if flt.created_from is not None:
        conditions.append(_O.order_created_at >= flt.created_from)
    if flt.created_to is not None:
        conditions.append(_O.order_created_at <= flt.created_to)
    if flt.q:
        conditions.append(_search(flt.q))
    return conditions


def _search(q: str) -> ColumnElement[bool]:
    """Order id (exact or prefix), buyer name (substring, any case) or buyer phone digits."""
    matches: list[ColumnElement[bool]] = [
        _O.external_order_id.startswith(q, autoescape=True),
        _O.buyer_name.icontains(q, autoescape=True),
    ]
    # A national number (0812...) must match the stored international form (+66812...).
    digits = _NON_DIGITS.sub("", q).lstrip("0")
    if len(digits) >= _MIN_PHONE_DIGITS:
        matches.append(
            func.regexp_replace(_O.buyer_phone, r"\D", "", "g").contains(digits, autoescape=True)
        )
    return or_(*matches)


def _page_query(flt: OrderFilter, page: PageRequest) -> Select[Any]:
    key, descending = SORT_KEYS[page.sort]
    conditions = _conditions(flt)
    if page.after is not None:
        after = tuple_(key, _O.id)
        bound = tuple_(bindparam("after_key", page.after[0]), bindparam("after_id", page.after[1]))
        conditions.append(after < bound if descending else after > bound)
    order = (key.desc(), _O.id.desc()) if descending else (key.asc(), _O.id.asc())
    query = select(*LIST_COLUMNS).where(and_(*conditions)).order_by(*order)
    query = query.limit(page.limit + 1)
    if page.offset:
        query = query.offset(page.offset)
    return query


_ITEMS_FOR_ORDERS = (
    select(*ITEM_COLUMNS)
    .where(_I.order_id == any_(bindparam("order_ids", type_=ARRAY(BigInteger))))
    .order_by(_I.order_id, _I.line_no)
)


async def list_page(session: AsyncSession, flt: OrderFilter, page: PageRequest) -> OrderPage:
    rows = (await session.execute(_page_query(flt, page))).all()
    has_more = len(rows) > page.limit
    rows = rows[: page.limit]
    return OrderPage(rows, await items_for(session, [row.id for row in rows]), has_more)


async def items_for(session: AsyncSession, order_ids: list[int]) -> dict[int, list[Any]]:
    """The line items of many orders in one query."""
    items: dict[int, list[Any]] = {order_id: [] for order_id in order_ids}
    if order_ids:
        result = await session.execute(_ITEMS_FOR_ORDERS, {"order_ids": order_ids})
        for item in result:
            items[item.order_id].append(item)
    return items


async def count(session: AsyncSession, flt: OrderFilter) -> int:
    query = select(func.count()).select_from(MarketplaceOrder).where(and_(*_conditions(flt)))
    return int((await session.execute(query)).scalar_one())


async def get_for_user(session: AsyncSession, user_id: str, order_id: int) -> Any | None:
    query = select(*LIST_COLUMNS, _O.raw).where(_O.id == order_id, _O.user_id == user_id)
    return (await session.execute(query)).first()
