"""Analytics queries: one statement per figure set, aggregated in PostgreSQL over the range.

Every query reads the user's orders through `ix_marketplace_orders_user_counted`, an index on
(user_id, order_counted_at(...)): the counting instant (cash on delivery when placed, prepaid
when paid). Day boundaries are midnight in the requested zone, computed by PostgreSQL
(`date::timestamp AT TIME ZONE tz`), so the bounds and the buckets use one time zone database.
Archived orders are included: archiving only hides orders from the order list."""

# SQL text here is assembled from constant fragments only; every value is a bind parameter.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.analytics.schemas import Interval
from app.models.order import counted_at_sql

COUNTED_AT = counted_at_sql("o")

# Orders whose counting instant falls inside [from 00:00, to + 1 day 00:00) in the zone.
IN_RANGE = f"""o.user_id = :user_id
    AND {COUNTED_AT} >= (CAST(:start AS date)::timestamp AT TIME ZONE :tz)
    AND {COUNTED_AT} < ((CAST(:end AS date) + 1)::timestamp AT TIME ZONE :tz)"""

# What an order in range counts as; NULL: not counted (a prepaid order not paid yet). "Paid" is
# read from the normalized status (anything past `unpaid`), since Lazada and Facebook give no
# payment time; an `unknown` status counts only with a payment time.
KIND = """CASE
        WHEN o.waiting_only THEN NULL
        WHEN o.status IN ('cancelled', 'returned', 'failed') THEN o.status
        WHEN o.is_cod OR (o.status <> 'unpaid' AND (o.status <> 'unknown' OR o.paid_at IS NOT NULL))
            THEN 'order'
    END"""
COUNTS_AS_ORDER = f"({KIND}) = 'order'"


def master_sku_links() -> str:
    """(connection_id, channel_sku) -> master_sku for the user's linked listings, as one SQL
    subquery: the one place analytics knows how products link to master SKUs (sku_mappings
    ties a listing of marketplace_stock_levels to a row of inventory_skus). A listing
    deliberately unlinked (master_sku_id NULL) or never linked keeps its channel SKU, which is
    also the master SKU of the same name that stock reservations fall back to. Where several
    listings of a shop share a SKU, the oldest linked one decides, as reservations do."""
    return """SELECT DISTINCT ON (l.connection_id, l.sku)
            l.connection_id, l.sku AS channel_sku, s.sku AS master_sku
        FROM sku_mappings m
        JOIN marketplace_stock_levels l ON l.id = m.listing_id
        JOIN inventory_skus s ON s.id = m.master_sku_id
        WHERE m.user_id = :user_id AND l.sku IS NOT NULL
        ORDER BY l.connection_id, l.sku, l.id"""


@dataclass(frozen=True, slots=True)
class Window:
    user_id: str
    start: date
    end: date
    tz: str

    def params(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "start": self.start, "end": self.end, "tz": self.tz}


_SUMMARY = text(f"""
SELECT c.platform_code, c.currency,
    count(*) FILTER (WHERE c.kind = 'order') AS orders,
    coalesce(sum(c.total) FILTER (WHERE c.kind = 'order'), 0) AS revenue,
    count(*) FILTER (WHERE c.kind = 'cancelled') AS cancelled,
    count(*) FILTER (WHERE c.kind = 'returned') AS returned,
    count(*) FILTER (WHERE c.kind = 'failed') AS failed
FROM (SELECT o.platform_code, o.currency, o.total, {KIND} AS kind
      FROM marketplace_orders o WHERE {IN_RANGE}) AS c
WHERE c.kind IS NOT NULL
GROUP BY c.platform_code, c.currency
ORDER BY c.platform_code, c.currency""")


async def summary_rows(session: AsyncSession, window: Window) -> Sequence[Any]:
    """Per (platform, currency): orders, revenue (exact numeric), cancelled, returned, failed."""
    return (await session.execute(_SUMMARY, window.params())).all()


# Each connection's freshness: its last successful order sync (newest by start, through the
# (connection_id, started_at) index) and its last processed push (a partial index of 0009).
_FRESHNESS = text("""
SELECT c.id AS connection_id, c.platform_code, c.shop_name,
    s.finished_at AS last_sync_at, w.processed_at AS last_event_at
FROM marketplace_connections c
LEFT JOIN LATERAL (
    SELECT l.finished_at FROM marketplace_sync_logs l
    WHERE l.connection_id = c.id AND l.kind = 'orders' AND l.status = 'success'
    ORDER BY l.started_at DESC LIMIT 1
) AS s ON true
LEFT JOIN LATERAL (
    SELECT h.processed_at FROM marketplace_webhooks h
    WHERE h.connection_id = c.id AND h.status = 'processed' AND h.processed_at IS NOT NULL
    ORDER BY h.processed_at DESC LIMIT 1
) AS w ON true
WHERE c.user_id = :user_id
ORDER BY c.platform_code, c.created_at, c.id""")


async def freshness_rows(session: AsyncSession, user_id: str) -> Sequence[Any]:
    return (await session.execute(_FRESHNESS, {"user_id": user_id})).all()


# date_trunc units, from the enum only (never request text).
_UNITS = {Interval.DAY: "day", Interval.WEEK: "week", Interval.MONTH: "month"}


@lru_cache(maxsize=len(_UNITS))
def timeseries_statement(interval: Interval) -> Any:
    unit = _UNITS[interval]
    # Every bucket of every platform the user sells on, empty ones included: the calendar
    # comes from generate_series, the figures join onto it.
    return text(f"""
WITH buckets AS (
    SELECT CAST(b AS date) AS bucket
    FROM generate_series(date_trunc('{unit}', CAST(:start AS date)::timestamp),
                         CAST(:end AS date)::timestamp, interval '1 {unit}') AS b
), per_currency AS (
    SELECT o.platform_code, o.currency,
        CAST(date_trunc('{unit}', {COUNTED_AT} AT TIME ZONE :tz) AS date) AS bucket,
        count(*) AS orders, sum(o.total) AS revenue
    FROM marketplace_orders o
    WHERE {IN_RANGE} AND {COUNTS_AS_ORDER}
    GROUP BY 1, 2, 3
), counted AS (
    SELECT platform_code, bucket, CAST(sum(orders) AS bigint) AS orders,
        array_agg(currency ORDER BY currency) AS currencies,
        array_agg(revenue::text ORDER BY currency) AS revenues
    FROM per_currency GROUP BY platform_code, bucket
), platforms AS (
    SELECT platform_code FROM marketplace_connections WHERE user_id = :user_id
    UNION SELECT platform_code FROM counted
)
SELECT p.platform_code, b.bucket, coalesce(c.orders, 0) AS orders,
    coalesce(c.currencies, '{{}}') AS currencies, coalesce(c.revenues, '{{}}') AS revenues
FROM platforms p CROSS JOIN buckets b
LEFT JOIN counted c ON c.platform_code = p.platform_code AND c.bucket = b.bucket
ORDER BY p.platform_code, b.bucket""")


async def timeseries_rows(
    session: AsyncSession, window: Window, interval: Interval
) -> Sequence[Any]:
    """(platform, bucket, orders, currencies[], revenues[] as numeric text), every bucket."""
    return (await session.execute(timeseries_statement(interval), window.params())).all()


# Lines of counted orders keyed by master SKU (channel SKU when unlinked; the name for lines
# without any SKU). Ranked by units: revenue cannot rank products sold in several currencies.
_TOP_PRODUCTS = text(f"""
WITH links AS ({master_sku_links()}),
lines AS (
    SELECT coalesce(k.master_sku, nullif(i.sku, '')) AS sku, i.name, o.platform_code,
        o.currency, i.quantity, i.unit_price * i.quantity - i.discount AS amount,
        o.order_created_at, i.id AS item_id
    FROM marketplace_orders o
    JOIN marketplace_order_items i ON i.order_id = o.id
    LEFT JOIN links k ON k.connection_id = o.connection_id AND k.channel_sku = i.sku
    WHERE {IN_RANGE} AND {COUNTS_AS_ORDER}
), keyed AS (
    SELECT *, CASE WHEN sku IS NULL THEN 'name:' || name ELSE 'sku:' || sku END AS key
    FROM lines
), per_platform AS (
    SELECT key, platform_code, currency, sum(quantity) AS units, sum(amount) AS revenue
    FROM keyed GROUP BY key, platform_code, currency
), top AS (
    SELECT key, sum(units) AS units FROM per_platform
    GROUP BY key ORDER BY sum(units) DESC, key LIMIT :limit
), names AS (
    SELECT DISTINCT ON (l.key) l.key, l.sku, l.name
    FROM keyed l JOIN top t ON t.key = l.key
    ORDER BY l.key, l.order_created_at DESC, l.item_id DESC
)
SELECT t.key, n.sku, n.name, t.units,
    array_agg(pp.platform_code ORDER BY pp.platform_code, pp.currency) AS platform_codes,
    array_agg(pp.currency ORDER BY pp.platform_code, pp.currency) AS currencies,
    array_agg(pp.units ORDER BY pp.platform_code, pp.currency) AS units_by_platform,
    array_agg(pp.revenue::text ORDER BY pp.platform_code, pp.currency) AS revenues
FROM top t
JOIN names n ON n.key = t.key
JOIN per_platform pp ON pp.key = t.key
GROUP BY t.key, n.sku, n.name, t.units
ORDER BY t.units DESC, t.key""")


async def top_product_rows(session: AsyncSession, window: Window, limit: int) -> Sequence[Any]:
    """Per product: sku, name, units and, per (platform, currency), units and revenue."""
    params = {**window.params(), "limit": limit}
    return (await session.execute(_TOP_PRODUCTS, params)).all()
