"""The buyer export on the wire."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from app.orders.schemas import OrderDetailOut
from app.schemas import CamelModel


class BuyerExportOut(CamelModel):
    phone: str = Field(description="The phone number asked for, as given")
    exported_at: datetime
    order_count: int
    orders: list[OrderDetailOut] = Field(
        description="Every order of this buyer (matched by phone digits: 0812345678 and "
        "+66812345678 are one buyer), oldest first, buyer fields in full, with raw payloads"
    )


class BuyerExportResponse(CamelModel):
    data: BuyerExportOut
