"""Fulfillment on the wire (camelCase): ship, bulk ship, labels, cancel, buyer requests."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field

from app.schemas import CamelModel

UserId = Annotated[str, Field(min_length=1, max_length=128)]
OrderIdValue = Annotated[int, Field(ge=1, le=2**63 - 1)]
MAX_BULK_ORDERS = 500
MAX_LABEL_ORDERS = 100


class ShipMethod(StrEnum):
    PICKUP = "pickup"
    DROPOFF = "dropoff"
    TRACKING = "tracking"


class FulfillmentStatus(StrEnum):
    REQUESTED = "requested"
    SHIPPED = "shipped"
    FAILED = "failed"


class LabelFormat(StrEnum):
    A6 = "a6"
    A4 = "a4"


class ShipOptions(CamelModel):
    method: ShipMethod
    address_id: str | None = Field(None, max_length=64, description="Shopee pickup address")
    pickup_time_id: str | None = Field(None, max_length=64, description="Shopee pickup slot")
    carrier: str | None = Field(
        None, max_length=64, description="Meta carrier code (e.g. KERRY_EXPRESS_THAILAND)"
    )


class ShipBody(ShipOptions):
    user_id: UserId
    tracking_number: str | None = Field(None, min_length=1, max_length=64)
    package_number: str | None = Field(
        None, max_length=255, description="One package of a split Shopee order"
    )


class BulkShipBody(ShipOptions):
    user_id: UserId
    order_ids: list[OrderIdValue] = Field(min_length=1, max_length=MAX_BULK_ORDERS)
    tracking_numbers: dict[str, Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        None, description="Per order id, for the `tracking` method"
    )


class LabelsBody(CamelModel):
    user_id: UserId
    order_ids: list[OrderIdValue] = Field(min_length=1, max_length=MAX_LABEL_ORDERS)
    format: LabelFormat = LabelFormat.A6


class CancelBody(CamelModel):
    user_id: UserId
    reason: str | None = Field(
        None, min_length=1, max_length=64, description="A code of GET .../cancel-reasons"
    )


class CancellationAnswer(CamelModel):
    user_id: UserId
    accept: bool


class FulfillmentOut(CamelModel):
    id: uuid.UUID
    order_id: int
    status: FulfillmentStatus
    method: ShipMethod
    tracking_number: str | None
    carrier: str | None
    package_id: str | None
    package_number: str | None
    message: str | None
    shipped_at: datetime | None
    created_at: datetime
    updated_at: datetime


class FulfillmentPage(CamelModel):
    next_cursor: str | None


class FulfillmentList(CamelModel):
    data: list[FulfillmentOut]
    pagination: FulfillmentPage


class OrderFulfillmentOut(CamelModel):
    """What an order shows of its latest shipment."""

    status: FulfillmentStatus
    tracking_number: str | None
    carrier: str | None
    shipped_at: datetime | None


class ShippingOptionsOut(CamelModel):
    methods: list[ShipMethod]
    pickup_addresses: list[dict[str, Any]]
    dropoff_branches: list[dict[str, Any]]
    carriers: list[dict[str, str]]
    packages: list[dict[str, Any]]
    info_needed: dict[str, list[str]]


class CancelReasonOut(CamelModel):
    code: str
    name: str
