"""Analytics: parameter checks and the wire shapes around the repository's aggregates. Python
only formats what PostgreSQL summed (a row per platform, currency and bucket), never orders."""

from __future__ import annotations

import itertools
import operator
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.analytics import repository
from app.analytics.repository import Window
from app.analytics.schemas import (
    ConnectionFreshness,
    Figures,
    Interval,
    Metric,
    PlatformFigures,
    ProductPlatform,
    SummaryOut,
    TopProduct,
    TopProductsOut,
)
from app.errors import FieldProblem, ValidationFailed
from app.money import format_amount, in_minor_units
from app.timezones import iana_zone

DEFAULT_TZ = "Asia/Bangkok"
DEFAULT_DAYS = 30
# Two years: enough for year-on-year, and a day series stays a few thousand points.
MAX_RANGE_DAYS = 731
_RATE = Decimal("0.0001")
# asyncpg sends date.min and date.max as -infinity and infinity (a calendar of infinite
# buckets), and the far ends overflow PostgreSQL's timestamps: dates stay in sane years.
EARLIEST = date(1970, 1, 1)
LATEST = date(2999, 12, 31)


def invalid(parameter: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        f"Invalid request: {parameter}", field_messages=[FieldProblem(parameter, message)]
    )


def window(user_id: str, start: date | None, end: date | None, tz: str) -> Window:
    """The checked range: an IANA zone, `from` <= `to`, at most MAX_RANGE_DAYS days. Without
    dates: the last DEFAULT_DAYS days up to today in the zone."""
    zone = iana_zone(tz)
    if zone is None:
        raise invalid("tz", f"Unknown time zone '{tz[:64]}'; use an IANA name such as {DEFAULT_TZ}")
    if end is None:
        end = datetime.now(zone).date()
    if start is None:
        start = end - timedelta(days=DEFAULT_DAYS - 1)
    for name, day in (("from", start), ("to", end)):
        if not EARLIEST <= day <= LATEST:
            raise invalid(name, f"{name} must be between {EARLIEST} and {LATEST}")
    if start > end:
        raise invalid("from", "from must not be later than to")
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        raise invalid("to", f"The range may span at most {MAX_RANGE_DAYS} days")
    return Window(user_id=user_id, start=start, end=end, tz=tz)


def rate(part: int, whole: int) -> float:
    """part / whole, 0 to 1 with 4 decimals rounded half up; 0 when there is no whole."""
    if whole <= 0:
        return 0.0
    return float((Decimal(part) / Decimal(whole)).quantize(_RATE, rounding=ROUND_HALF_UP))


def money(amounts: dict[str, Decimal]) -> dict[str, str]:
    return {currency: format_amount(amounts[currency], currency) for currency in sorted(amounts)}


@dataclass(slots=True)
class _Tally:
    orders: int = 0
    cancelled: int = 0
    returned: int = 0
    failed: int = 0
    orders_by_currency: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    revenue: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))

    def add(self, row: Any) -> None:
        self.orders += row.orders
        self.cancelled += row.cancelled
        self.returned += row.returned
        self.failed += row.failed
        if row.orders:
            self.orders_by_currency[row.currency] += row.orders
            self.revenue[row.currency] += row.revenue

    def figures(self, all_orders: int) -> dict[str, Any]:
        average = {
            currency: in_minor_units(total / self.orders_by_currency[currency], currency)
            for currency, total in self.revenue.items()
        }
        return {
            "orders": self.orders,
            "cancelled_orders": self.cancelled,
            "returned_orders": self.returned,
            "failed_orders": self.failed,
            "revenue": money(self.revenue),
            "average_order_value": money(average),
            "cancellation_rate": rate(self.cancelled, self.orders + self.cancelled + self.returned),
            "share_of_orders": rate(self.orders, all_orders),
        }


async def summary(session: AsyncSession, window: Window) -> SummaryOut:
    rows = await repository.summary_rows(session, window)
    connections = await repository.freshness_rows(session, window.user_id)
    by_platform: dict[str, _Tally] = {c.platform_code: _Tally() for c in connections}
    total = _Tally()
    for row in rows:
        by_platform.setdefault(row.platform_code, _Tally()).add(row)
        total.add(row)
    return SummaryOut(
        from_=window.start,
        to=window.end,
        tz=window.tz,
        platforms=[
            PlatformFigures(platform_code=code, **tally.figures(total.orders))
            for code, tally in sorted(by_platform.items())
        ],
        total=Figures(**total.figures(total.orders)),
        data_as_of=[_freshness(c) for c in connections],
    )


def _freshness(row: Any) -> ConnectionFreshness:
    sync_at: datetime | None = row.last_sync_at
    event_at: datetime | None = row.last_event_at
    known = [at for at in (sync_at, event_at) if at is not None]
    return ConnectionFreshness(
        connection_id=row.connection_id,
        platform_code=row.platform_code,
        shop_name=row.shop_name,
        as_of=max(known) if known else None,
        last_successful_sync_at=sync_at,
        last_processed_event_at=event_at,
    )


def _revenue(currencies: Iterable[str], amounts: Iterable[str]) -> dict[str, str]:
    return {c: format_amount(a, c) for c, a in zip(currencies, amounts, strict=True)}


async def timeseries(
    session: AsyncSession, window: Window, interval: Interval, metric: Metric
) -> dict[str, Any]:
    """The TimeseriesOut wire shape (by alias) as plain data, with no validation pass: the
    values come typed from the query, a year of daily buckets is over a thousand points, and
    the tests hold this shape to the schema."""
    rows = await repository.timeseries_rows(session, window, interval)
    series = []
    # Positional access: a Row's attribute lookup costs more than the rest of a point.
    for code, group in itertools.groupby(rows, key=operator.itemgetter(0)):
        if metric is Metric.ORDERS:
            points = [{"bucket": p[1], "value": p[2]} for p in group]
        else:
            points = [{"bucket": p[1], "value": _revenue(p[3], p[4])} for p in group]
        series.append({"platformCode": code, "points": points})
    return {
        "from": window.start,
        "to": window.end,
        "tz": window.tz,
        "interval": interval.value,
        "metric": metric.value,
        "series": series,
    }


async def top_products(session: AsyncSession, window: Window, limit: int) -> TopProductsOut:
    rows = await repository.top_product_rows(session, window, limit)
    products = []
    for row in rows:
        units: dict[str, int] = defaultdict(int)
        revenue: dict[str, dict[str, Decimal]] = defaultdict(dict)
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for code, currency, line_units, amount in zip(
            row.platform_codes, row.currencies, row.units_by_platform, row.revenues, strict=True
        ):
            units[code] += int(line_units)
            revenue[code][currency] = Decimal(amount)
            totals[currency] += Decimal(amount)
        products.append(
            TopProduct(
                sku=row.sku,
                name=row.name,
                units=int(row.units),
                revenue=money(totals),
                platforms=[
                    ProductPlatform(
                        platform_code=code,
                        units=units[code],
                        revenue=money(revenue[code]),
                    )
                    for code in sorted(units)
                ],
            )
        )
    return TopProductsOut(from_=window.start, to=window.end, tz=window.tz, products=products)
