"""What the exports read: orders (the order list's filter), customers and inventory, each in
keyset batches on an index, in a session of the export's own (it outlives the request's)."""

# SQL text here is assembled from constant fragments only; every value is a bind parameter.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.customers import repository as customers_repository
from app.customers.service import render_customer
from app.exports.writers import Column, Kind, Row
from app.inventory.rules import sellable_quantity
from app.money import DEFAULT_MINOR_UNITS, MINOR_UNITS
from app.orders.repository import OrderFilter, fetch, filter_sql
from app.orders.service import mask_email, mask_phone

BATCH = 2000

ORDER_COLUMNS = (
    Column("orderId", Kind.NUMBER),
    Column("platformCode"),
    Column("channel"),
    Column("externalOrderId"),
    Column("status"),
    Column("rawStatus"),
    Column("createdAt", Kind.TIME),
    Column("paidAt", Kind.TIME),
    Column("buyerName"),
    Column("buyerPhone"),
    Column("buyerEmail"),
    Column("subtotal", Kind.MONEY),
    Column("shippingFee", Kind.MONEY),
    Column("discount", Kind.MONEY),
    Column("total", Kind.MONEY),
    Column("currency"),
    Column("paymentMethod"),
    Column("isCod"),
)
CUSTOMER_COLUMNS = (
    Column("customerId", Kind.NUMBER),
    Column("name"),
    Column("phone"),
    Column("email"),
    Column("channels"),
    Column("orderCount", Kind.NUMBER),
    Column("totalSpent"),
    Column("firstOrderAt", Kind.TIME),
    Column("lastOrderAt", Kind.TIME),
)
INVENTORY_COLUMNS = (
    Column("sku"),
    Column("available", Kind.NUMBER),
    Column("reserved", Kind.NUMBER),
    Column("oversold", Kind.NUMBER),
    Column("buffer", Kind.NUMBER),
    Column("zeroBelow", Kind.NUMBER),
    Column("maxQuantity", Kind.NUMBER),
    Column("sellable", Kind.NUMBER),
    Column("listings", Kind.NUMBER),
)


def _places_sql() -> str:
    """The currency's minor units (app.money's table) as an SQL expression of o.currency."""
    cases = " ".join(f"WHEN '{code}' THEN {places}" for code, places in MINOR_UNITS.items())
    return f"CASE upper(o.currency) {cases} ELSE {DEFAULT_MINOR_UNITS} END"


def _money_sql(column: str) -> str:
    # round(numeric, n) has exactly n digits after the point and rounds half away from zero,
    # as app.money does; the server does it for a million rows faster than Decimal here.
    return f"round(o.{column}, {_places_sql()})::text AS {column}"


_ORDER_FIELDS = f"""o.id, o.platform_code, o.channel, o.external_order_id, o.status,
    o.raw_status, o.order_created_at, o.paid_at, o.buyer_name, o.buyer_phone, o.buyer_email,
    {_money_sql("subtotal")}, {_money_sql("shipping_fee")}, {_money_sql("discount")},
    {_money_sql("total")}, o.currency, o.payment_method, o.is_cod"""


def _time(value: datetime | None, zone: ZoneInfo) -> str | None:
    return value.astimezone(zone).isoformat() if value is not None else None


def _order_row(row: Any, zone: ZoneInfo, include_buyer: bool) -> Row:
    phone, email = row["buyer_phone"], row["buyer_email"]
    return (
        row["id"],
        row["platform_code"],
        row["channel"],
        row["external_order_id"],
        row["status"],
        row["raw_status"],
        _time(row["order_created_at"], zone),
        _time(row["paid_at"], zone),
        row["buyer_name"],
        phone if include_buyer else mask_phone(phone),
        email if include_buyer else mask_email(email),
        row["subtotal"],
        row["shipping_fee"],
        row["discount"],
        row["total"],
        row["currency"],
        row["payment_method"],
        "true" if row["is_cod"] else "false",
    )


async def _batches_of_orders(
    session: AsyncSession, flt: OrderFilter
) -> AsyncIterator[Sequence[Any]]:
    """The filtered orders, newest first, in keyset batches on (order_created_at, id): every
    batch is one range scan of the same index the order list pages on."""
    where, values = filter_sql(flt)
    after: tuple[datetime, int] | None = None
    while True:
        args = list(values)
        terms = list(where)
        if after is not None:
            args.extend(after)
            terms.append(
                f"(o.order_created_at, o.id) < (${len(args) - 1}::timestamptz, "
                f"${len(args)}::bigint)"
            )
        args.append(BATCH)
        sql = (
            f"SELECT {_ORDER_FIELDS} FROM marketplace_orders o WHERE {' AND '.join(terms)} "
            f"ORDER BY o.order_created_at DESC, o.id DESC LIMIT ${len(args)}::bigint"
        )
        rows = await fetch(session, sql, args)
        if rows:
            yield rows
        if len(rows) < BATCH:
            return
        after = (rows[-1]["order_created_at"], rows[-1]["id"])


async def order_rows(
    sessionmaker: async_sessionmaker[AsyncSession],
    flt: OrderFilter,
    zone: ZoneInfo,
    *,
    include_buyer: bool,
) -> AsyncIterator[Sequence[Row]]:
    async with sessionmaker() as session:
        async for rows in _batches_of_orders(session, flt):
            yield [_order_row(row, zone, include_buyer) for row in rows]


def _customer_row(row: Any, zone: ZoneInfo, include_buyer: bool) -> Row:
    customer = render_customer(row, include_buyer=include_buyer)
    spent = "; ".join(f"{currency} {amount}" for currency, amount in customer["totalSpent"].items())
    return (
        customer["id"],
        customer["name"],
        customer["phone"],
        customer["email"],
        " ".join(customer["channels"]),
        customer["orderCount"],
        spent,
        _time(customer["firstOrderAt"], zone),
        _time(customer["lastOrderAt"], zone),
    )


async def customer_rows(
    sessionmaker: async_sessionmaker[AsyncSession],
    user_id: str,
    q: str | None,
    zone: ZoneInfo,
    *,
    include_buyer: bool,
) -> AsyncIterator[Sequence[Row]]:
    """The list's customers (same order and search), in keyset batches."""
    async with sessionmaker() as session:
        after: tuple[datetime, int] | None = None
        while True:
            rows = await customers_repository.page(session, user_id, q=q, after=after, limit=BATCH)
            if rows:
                yield [_customer_row(row, zone, include_buyer) for row in rows]
            if len(rows) < BATCH:
                return
            after = (rows[-1]["last_order_at"], rows[-1]["id"])


_INVENTORY = (
    "SELECT s.id, s.sku, s.available, s.reserved, s.oversold, s.buffer, s.zero_below, "
    "s.max_quantity, (SELECT count(*) FROM sku_mappings m WHERE m.master_sku_id = s.id) "
    "AS listings FROM inventory_skus s WHERE s.user_id = $1 AND s.id > $2 {search} "
    "ORDER BY s.id LIMIT $3"
)


async def inventory_rows(
    sessionmaker: async_sessionmaker[AsyncSession], user_id: str, q: str | None
) -> AsyncIterator[Sequence[Row]]:
    """Master SKUs in the inventory list's order (by id), `q` a part of the SKU as there."""
    search, extra = "", []
    if q:
        escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        search, extra = "AND s.sku ILIKE $4", [f"%{escaped}%"]
    sql = _INVENTORY.format(search=search)
    async with sessionmaker() as session:
        after = 0
        while True:
            rows = await fetch(session, sql, [user_id, after, BATCH, *extra])
            if rows:
                yield [
                    (
                        row["sku"],
                        row["available"],
                        row["reserved"],
                        row["oversold"],
                        row["buffer"],
                        row["zero_below"],
                        row["max_quantity"],
                        sellable_quantity(
                            row["available"], row["buffer"], row["zero_below"], row["max_quantity"]
                        ),
                        row["listings"],
                    )
                    for row in rows
                ]
            if len(rows) < BATCH:
                return
            after = rows[-1]["id"]
