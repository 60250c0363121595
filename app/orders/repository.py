"""Order queries, in SQL written out so EXPLAIN reads the same text the API sends.

Every list query starts with `user_id = $1` and orders by an indexed key plus `id`, so a page is
one index range scan however many orders the user has. A list request is one statement: the
page, each order's items (one index probe per order inside the same statement, so no N+1 round
trips) and, when asked for, the count of the filtered set. One statement also means one
snapshot: the items always belong to the version of the order they are listed with.

These read paths run on the driver connection of the request's session (asyncpg): SQLAlchemy's
row and cursor layers cost more CPU than the whole query on a page of 50 orders."""

# SQL text here is assembled from constant fragments only; every value is a bind parameter.
# ruff: noqa: S608

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import DatabaseUnavailable
from app.fulfillment.repository import ORDER_FULFILLMENT_SQL
from app.models.order import ARCHIVE_DUE_SQL
from app.orders.schemas import OrderSort

# (column, descending, SQL type of a cursor value). (user_id, order_created_at, id) and
# (user_id, order_updated_at, id) are indexed; the total sorts sort the user's (or filter's)
# rows, a rare view not worth another index on every order write.
SORT_KEYS: dict[OrderSort, tuple[str, bool, str]] = {
    OrderSort.CREATED_DESC: ("order_created_at", True, "timestamptz"),
    OrderSort.CREATED_ASC: ("order_created_at", False, "timestamptz"),
    OrderSort.UPDATED_DESC: ("order_updated_at", True, "timestamptz"),
    OrderSort.UPDATED_ASC: ("order_updated_at", False, "timestamptz"),
    OrderSort.TOTAL_DESC: ("total", True, "numeric"),
    OrderSort.TOTAL_ASC: ("total", False, "numeric"),
}

# Money as text: the exact stored digits, with no Decimal round trip on the hot path.
ORDER_COLUMNS = (
    """o.id, o.connection_id::text AS connection_id, o.platform_code,
    o.external_order_id, o.status, o.raw_status, o.buyer_name, o.buyer_phone, o.buyer_email,
    o.shipping_address::text AS shipping_address, o.currency, o.subtotal::text AS subtotal,
    o.shipping_fee::text AS shipping_fee, o.discount::text AS discount, o.total::text AS total,
    o.payment_method, o.is_cod, o.order_created_at, o.order_updated_at, o.paid_at,
    o.updated_at, o.buyer_erased_at, o.archived_at, o.channel, o.buyer_external_id,
    o.waiting_only, """
    + ORDER_FULFILLMENT_SQL.format(order="o")
    + " AS fulfillment"
)
# One index probe per order of the page, inside the statement (no N+1 round trips).
ITEMS = """ARRAY(SELECT ARRAY[i.sku, i.name, i.variation, i.quantity::text, i.unit_price::text,
                       i.discount::text, i.external_item_id, i.external_product_id]
      FROM marketplace_order_items i WHERE i.order_id = {order}.id ORDER BY i.line_no)"""

# Live and Messenger lines waiting for stock (app/live), in queue order; none for the rest.
WAITLIST = """ARRAY(SELECT ARRAY[l.sku, l.name, l.code, (l.requested - l.reserved)::text]
      FROM social_order_lines l WHERE l.order_id = {order}.id AND l.active
      AND l.requested > l.reserved ORDER BY l.sort_at, l.sort_key, l.id)"""

# A search term shorter than this (in digits) matches too many phone numbers to be useful.
MIN_PHONE_DIGITS = 4


@dataclass(slots=True)
class OrderFilter:
    user_id: str
    platform_code: str | None = None
    connection_id: uuid.UUID | None = None
    statuses: Sequence[str] = ()
    created_from: datetime | None = None
    created_to: datetime | None = None
    q: str | None = None
    include_archived: bool = False


@dataclass(slots=True)
class PageRequest:
    sort: OrderSort = OrderSort.CREATED_DESC
    limit: int = 50
    offset: int = 0
    # The (sort key, id) of the last row of the previous page, for keyset paging.
    after: tuple[datetime | Decimal, int] | None = None
    include_total: bool = True


@dataclass(slots=True)
class OrderPage:
    rows: Sequence[Any]  # asyncpg records, in page order
    total: int | None
    has_more: bool


class _Args:
    """Positional parameters ($1, $2, ...) in the order the SQL text names them."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _where(flt: OrderFilter, arg: _Args) -> list[str]:
    where = [f"o.user_id = {arg(flt.user_id)}"]
    if not flt.include_archived:
        # Literal text, so the planner can pick the partial index of live orders.
        where.append("o.archived_at IS NULL")
    if flt.platform_code is not None:
        where.append(f"o.platform_code = {arg(flt.platform_code)}")
    if flt.connection_id is not None:
        where.append(f"o.connection_id = {arg(flt.connection_id)}")
    if len(flt.statuses) == 1:
        where.append(f"o.status = {arg(flt.statuses[0])}")
    elif flt.statuses:
        where.append(f"o.status = ANY({arg(list(flt.statuses))}::varchar[])")
    if "unpaid" in flt.statuses:
        # A live or Messenger order whose every line waits has nothing to pay yet.
        where.append("NOT o.waiting_only")
    if flt.created_from is not None:
        where.append(f"o.order_created_at >= {arg(flt.created_from)}")
    if flt.created_to is not None:
        where.append(f"o.order_created_at <= {arg(flt.created_to)}")
    if flt.q:
        where.append(_search(flt.q, arg))
    return where


def _search(q: str, arg: _Args) -> str:
    """Order id (exact or prefix), buyer name (substring, any case) or buyer phone digits."""
    term = _like_escape(q)
    matches = [
        f"o.external_order_id LIKE {arg(term + '%')}",
        f"o.buyer_name ILIKE {arg('%' + term + '%')}",
    ]
    # A national number (0812...) must match the stored international form (+66812...).
    digits = "".join(c for c in q if c.isascii() and c.isdigit()).lstrip("0")
    if len(digits) >= MIN_PHONE_DIGITS:
        matches.append(
            f"regexp_replace(o.buyer_phone, '[^0-9]', '', 'g') LIKE {arg('%' + digits + '%')}"
        )
    return "(" + " OR ".join(matches) + ")"


def list_statement(flt: OrderFilter, page: PageRequest) -> tuple[str, list[Any]]:
    column, descending, key_type = SORT_KEYS[page.sort]
    arg = _Args()
    where = _where(flt, arg)
    # The count reuses the filter's parameters; the cursor bound applies to the page only.
    total = (
        f"(SELECT count(*) FROM marketplace_orders o WHERE {' AND '.join(where)})"
        if page.include_total
        else "NULL::bigint"
    )
    direction = "DESC" if descending else "ASC"
    if page.after is not None:
        key, last_id = page.after
        # Row comparison: an index range condition on (key, id), not a filter.
        where.append(
            f"(o.{column}, o.id) {'<' if descending else '>'} "
            f"({arg(key)}::{key_type}, {arg(last_id)}::bigint)"
        )
    order_by = f"ORDER BY o.{column} {direction}, o.id {direction}"
    bounds = f"LIMIT {arg(page.limit + 1)}::bigint OFFSET {arg(page.offset)}::bigint"
    if page.offset:
        # Deferred join: skip the offset rows in the index alone (an index-only scan for the
        # common filters), then read the page's rows by primary key.
        source = (
            f"(SELECT o.id FROM marketplace_orders o WHERE {' AND '.join(where)} "
            f"{order_by} {bounds}) AS page JOIN marketplace_orders o ON o.id = page.id"
        )
    else:
        source = f"marketplace_orders o WHERE {' AND '.join(where)} {order_by} {bounds}"
    # Items are read for the page's rows only, never for rows an OFFSET skips.
    sql = (
        f"SELECT {total} AS total_count, p.*, {ITEMS.format(order='p')} AS items,\n"
        f"       {WAITLIST.format(order='p')} AS waitlist\n"
        f"FROM (SELECT o.{column} AS sort_key, {ORDER_COLUMNS}\n      FROM {source}) AS p\n"
        f"ORDER BY p.sort_key {direction}, p.id {direction}"
    )
    return sql, arg.values


async def _driver(session: AsyncSession) -> Any:
    """The session's asyncpg connection (no transaction: a single statement is one snapshot)."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def fetch(session: AsyncSession, sql: str, args: list[Any]) -> list[Any]:
    driver = await _driver(session)
    try:
        rows: list[Any] = await driver.fetch(sql, *args)
    except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
        # Not wrapped by SQLAlchemy here: drop the connection from the pool ourselves.
        await (await session.connection()).invalidate(exc)
        raise DatabaseUnavailable() from exc
    return rows


async def list_page(session: AsyncSession, flt: OrderFilter, page: PageRequest) -> OrderPage:
    sql, args = list_statement(flt, page)
    rows = await fetch(session, sql, args)
    total: int | None = rows[0]["total_count"] if rows else None
    if total is None and page.include_total:
        # An empty page past the end of the set: its count still has to be told.
        total = 0 if page.offset == 0 and page.after is None else await count(session, flt)
    return OrderPage(rows[: page.limit], total, len(rows) > page.limit)


async def count(session: AsyncSession, flt: OrderFilter) -> int:
    arg = _Args()
    where = " AND ".join(_where(flt, arg))
    sql = f"SELECT count(*) FROM marketplace_orders o WHERE {where}"
    rows = await fetch(session, sql, arg.values)
    return int(rows[0][0])


async def get_for_user(session: AsyncSession, user_id: str, order_id: int) -> Any | None:
    sql = (
        f"SELECT {ORDER_COLUMNS}, {ITEMS.format(order='o')} AS items, "
        f"{WAITLIST.format(order='o')} AS waitlist, o.raw::text AS raw "
        "FROM marketplace_orders o "
        "WHERE o.id = $1 AND o.user_id = $2"
    )
    rows = await fetch(session, sql, [order_id, user_id])
    return rows[0] if rows else None


# The oldest finished orders not archived yet, through the partial index of exactly this
# predicate; rows a sync holds right now are skipped and archived by a later run.
_ARCHIVE_BATCH = text(f"""
WITH due AS (
    SELECT id FROM marketplace_orders
    WHERE {ARCHIVE_DUE_SQL} AND order_created_at < :cutoff
    ORDER BY order_created_at LIMIT :batch_size
    FOR UPDATE SKIP LOCKED
)
UPDATE marketplace_orders AS o SET archived_at = now() FROM due WHERE o.id = due.id
RETURNING o.id""")


async def archive_batch(session: AsyncSession, cutoff: datetime, batch_size: int) -> int:
    """Archive up to `batch_size` finished orders placed before `cutoff`; how many were."""
    result = await session.execute(_ARCHIVE_BATCH, {"cutoff": cutoff, "batch_size": batch_size})
    return len(result.all())


def filter_sql(flt: OrderFilter) -> tuple[list[str], list[Any]]:
    """The WHERE terms of the order list's filter and their values ($1, $2, ...), for other
    readers of the same set (the export)."""
    arg = _Args()
    return _where(flt, arg), arg.values
