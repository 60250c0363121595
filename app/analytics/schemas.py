"""Analytics on the wire (INTERFACE.md "Analytics"): money per currency as
`{"THB": "1234.50"}` with the currency's minor units, rates as numbers from 0 to 1 with 4
decimals, dates as `YYYY-MM-DD` in the requested time zone."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from app.platforms.types import PlatformCode

MoneyByCurrency = Annotated[
    dict[str, str],
    Field(
        description="Amount per ISO 4217 currency, each a decimal string with exactly the "
        "currency's minor units; never summed across currencies; {} when nothing counts",
        examples=[{"THB": "1234.50"}],
    ),
]
Rate = Annotated[float, Field(ge=0, le=1, description="0 to 1, 4 decimals")]


class CamelModel(BaseModel):
    """camelCase on the wire, like app.schemas.CamelModel, without its storable-text check:
    these models only carry figures out (a year of daily points is a thousand objects)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Interval(StrEnum):
    DAY = "day"
    WEEK = "week"  # Monday to Sunday
    MONTH = "month"


class Metric(StrEnum):
    ORDERS = "orders"
    REVENUE = "revenue"


class Figures(CamelModel):
    orders: int = Field(description="Orders counted (paid prepaid and cash-on-delivery ones)")
    cancelled_orders: int
    returned_orders: int
    failed_orders: int = Field(description="Failed deliveries (lost, damaged), counted apart")
    revenue: MoneyByCurrency
    average_order_value: MoneyByCurrency = Field(
        description="Revenue / orders per currency, rounded half up to the minor unit"
    )
    cancellation_rate: Rate = Field(description="cancelled / (orders + cancelled + returned)")
    share_of_orders: Rate = Field(description="This platform's orders / all orders")


class PlatformFigures(Figures):
    platform_code: PlatformCode


class ConnectionFreshness(CamelModel):
    connection_id: uuid.UUID
    platform_code: PlatformCode
    shop_name: str | None
    as_of: datetime | None = Field(
        description="The later of the two below: orders up to about this time are counted; "
        "null before the first successful sync or processed push"
    )
    last_successful_sync_at: datetime | None = Field(
        description="When the connection's last successful order sync finished"
    )
    last_processed_event_at: datetime | None = Field(
        description="When the connection's last marketplace push (webhook) was processed"
    )


class Period(CamelModel):
    from_: date = Field(alias="from")
    to: date
    tz: str


class SummaryOut(Period):
    platforms: list[PlatformFigures] = Field(
        description="Every platform the user has a connection on (or orders from)"
    )
    total: Figures
    data_as_of: list[ConnectionFreshness] = Field(description="One entry per connection")


class Point(CamelModel):
    bucket: date = Field(description="The bucket's first day (weeks start on Monday)")
    value: int | MoneyByCurrency = Field(
        description="metric=orders: a count; metric=revenue: an amount per currency"
    )


class Series(CamelModel):
    platform_code: PlatformCode
    points: list[Point]


class TimeseriesOut(Period):
    interval: Interval
    metric: Metric
    series: list[Series]


class ProductPlatform(CamelModel):
    platform_code: PlatformCode
    units: int
    revenue: MoneyByCurrency


class TopProduct(CamelModel):
    sku: str | None = Field(
        description="Master SKU, or the channel's SKU when the listing is not linked to one; "
        "null for lines sold without a SKU (grouped by name)"
    )
    name: str = Field(description="The item name on the most recent order")
    units: int
    revenue: MoneyByCurrency = Field(description="Unit price x quantity less the line discount")
    platforms: list[ProductPlatform]


class TopProductsOut(Period):
    products: list[TopProduct] = Field(description="Most units sold first")


class SummaryResponse(CamelModel):
    data: SummaryOut


class TimeseriesResponse(CamelModel):
    data: TimeseriesOut


class TopProductsResponse(CamelModel):
    data: TopProductsOut
