"""Customers on the wire."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from app.orders.schemas import OrderDetailOut, OrderOut
from app.platforms.types import PlatformCode
from app.schemas import CamelModel


class CustomerOut(CamelModel):
    """One buyer across channels. `phone` (`******5678`) and `email` (`s****@example.com`)
    are masked unless the request has `includeBuyer=true`, as in order lists."""

    id: int
    name: str | None = Field(description="The buyer name of their newest order that has one")
    phone: str | None
    email: str | None
    channels: list[PlatformCode] = Field(description="Platforms the customer ordered on")
    order_count: int
    total_spent: dict[str, str] = Field(
        description="Per currency, the sum of their orders' totals (cancelled, returned and "
        "failed orders left out), a decimal string with the currency's minor units",
        examples=[{"THB": "1250.00"}],
    )
    first_order_at: datetime
    last_order_at: datetime


class CustomerDetailOut(CustomerOut):
    orders: list[OrderOut] = Field(
        description="Their newest orders (up to 200), newest first, as the order list shows them"
    )


class CustomerPagination(CamelModel):
    limit: int
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page"
    )


class CustomerListResponse(CamelModel):
    data: list[CustomerOut]
    pagination: CustomerPagination


class CustomerDetailResponse(CamelModel):
    data: CustomerDetailOut


class CustomerExportOut(CamelModel):
    customer: CustomerOut = Field(description="The customer, phone and e-mail in full")
    exported_at: datetime
    order_count: int
    orders: list[OrderDetailOut] = Field(
        description="Every order of the customer, newest first, buyer fields in full, with "
        "the platforms' raw payloads"
    )


class CustomerExportResponse(CamelModel):
    data: CustomerExportOut


class CustomerErasureOut(CamelModel):
    customer_id: int
    erased_orders: int = Field(description="Orders whose buyer data was erased now")


class CustomerErasureResponse(CamelModel):
    data: CustomerErasureOut
