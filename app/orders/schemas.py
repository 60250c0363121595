"""The unified order shape on the wire. Money is a decimal string with exactly the minor units
of the order's currency (app.money): "10780.20" in THB, "38000" in VND."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, PlainSerializer, model_validator

from app.fulfillment.schemas import OrderFulfillmentOut
from app.money import in_minor_units
from app.platforms.types import OrderStatus, PlatformCode
from app.schemas import CamelModel


def _plain(value: Decimal) -> str:
    return format(value, "f")  # str() would give "1E-7" for some stored values


Money = Annotated[
    Decimal,
    PlainSerializer(_plain, return_type=str, when_used="always"),
    Field(
        description="Decimal string with exactly the minor units of the order's currency "
        "(ISO 4217: two for THB, MYR, SGD, PHP, USD; none for VND, IDR)",
        json_schema_extra={"type": "string", "format": "decimal", "examples": ["1234.50"]},
    ),
]


class OrderSort(StrEnum):
    CREATED_DESC = "-createdAt"
    CREATED_ASC = "createdAt"
    UPDATED_DESC = "-updatedAt"
    UPDATED_ASC = "updatedAt"
    TOTAL_DESC = "-total"
    TOTAL_ASC = "total"


class AddressOut(CamelModel):
    name: str | None = None
    phone: str | None = None
    line1: str | None = None
    line2: str | None = None
    district: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None
    full_address: str | None = None


class OrderItemOut(CamelModel):
    sku: str | None
    name: str
    variation: str | None
    quantity: int
    unit_price: Money
    discount: Money
    external_item_id: str | None
    external_product_id: str | None


class OrderChannel(StrEnum):
    MARKETPLACE = "marketplace"
    LIVE = "live"
    MESSENGER = "messenger"


class WaitlistLineOut(CamelModel):
    """Units a live or Messenger line asked for that wait for stock (first come, first served)."""

    sku: str | None
    name: str
    code: str | None = Field(description="The live code the buyer commented (null for Messenger)")
    quantity: int


class OrderOut(CamelModel):
    """In order lists `buyerPhone` (`******5678`), `buyerEmail` (`s****@example.com`) and the
    address's `phone`, `line1`, `line2` and `fullAddress` (`****`) are masked unless the
    request has `includeBuyer=true`; order detail shows them in full."""

    id: int
    connection_id: uuid.UUID
    platform_code: PlatformCode
    external_order_id: str
    status: OrderStatus
    raw_status: str
    buyer_name: str | None
    buyer_phone: str | None
    buyer_email: str | None
    shipping_address: AddressOut | None
    currency: str
    subtotal: Money
    shipping_fee: Money
    discount: Money
    total: Money
    payment_method: str | None
    is_cod: bool
    created_at: datetime = Field(description="When the buyer placed the order (platform time)")
    updated_at: datetime = Field(description="The platform's last update of the order")
    paid_at: datetime | None
    synced_at: datetime = Field(description="When this service last stored a change")
    buyer_erased_at: datetime | None = Field(
        description="When the buyer's name, contact details and address were erased (retention "
        "or a disconnect with eraseBuyerData); null while they are kept"
    )
    archived_at: datetime | None = Field(
        description="When the order was archived (finished and older than "
        "ORDER_ARCHIVE_AFTER_DAYS): left out of the order list unless includeArchived=true, "
        "still in order detail and analytics; null while it is not archived"
    )
    items: list[OrderItemOut]
    # Facebook social orders (app/live): this service owns their state.
    channel: OrderChannel = Field(
        OrderChannel.MARKETPLACE,
        description="`live` (CF comments on a Facebook live), `messenger` (a Messenger cart) or "
        "`marketplace` (read from the platform)",
    )
    buyer_external_id: str | None = Field(
        None, description="The buyer's Page-scoped id (live and Messenger orders)"
    )
    waitlist: list[WaitlistLineOut] = Field(
        default_factory=list, description="Live and Messenger lines waiting for stock"
    )
    waiting_only: bool = Field(
        False,
        description="Every line waits for stock: nothing to pay yet; left out of `status=unpaid` "
        "lists and of analytics until a unit is the buyer's",
    )
    fulfillment: OrderFulfillmentOut | None = Field(
        None, description="The latest shipment asked here (app/fulfillment), or null"
    )

    @model_validator(mode="after")
    def _amounts_in_minor_units(self) -> OrderOut:
        # Items do not know the currency; the order sets the digits of every amount it holds.
        currency = self.currency
        self.subtotal = in_minor_units(self.subtotal, currency)
        self.shipping_fee = in_minor_units(self.shipping_fee, currency)
        self.discount = in_minor_units(self.discount, currency)
        self.total = in_minor_units(self.total, currency)
        for item in self.items:
            item.unit_price = in_minor_units(item.unit_price, currency)
            item.discount = in_minor_units(item.discount, currency)
        return self


class OrderDetailOut(OrderOut):
    raw: dict[str, Any] = Field(description="The platform's payload, as received")


class Pagination(CamelModel):
    total: int | None = Field(
        description="Orders matching the filters (all pages); null only with includeTotal=false"
    )
    limit: int
    offset: int
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page (keyset paging); null on the last page"
    )


class OrderListResponse(CamelModel):
    data: list[OrderOut]
    pagination: Pagination


class OrderDetailResponse(CamelModel):
    data: OrderDetailOut
