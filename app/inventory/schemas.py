from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from app.schemas import CamelModel


class PushStatus(StrEnum):
    OK = "ok"
    PENDING = "pending"
    FAILED = "failed"
    DRIFT = "drift"
    UNSUPPORTED = "unsupported"


class LedgerKind(StrEnum):
    SET = "set"
    RESERVE = "reserve"
    RELEASE = "release"
    PUSH = "push"
    READBACK = "readback"


class InventoryListing(CamelModel):
    listing_id: int
    connection_id: uuid.UUID
    platform_code: str
    platform_stock: int | None
    pushed_stock: int | None
    push_status: PushStatus
    last_push_at: datetime | None
    message: str | None


class InventoryRow(CamelModel):
    sku: str
    available: int
    reserved: int
    oversold: int = Field(description="Units reserved beyond what was available")
    buffer: int | None
    zero_below: int | None
    max_quantity: int | None
    low_stock_at: int | None = Field(
        description="An `inventory.low_stock` alert is raised when available reaches this"
    )
    sellable: int = Field(description="What each channel is told it may still sell")
    listings: list[InventoryListing]


class CursorPagination(CamelModel):
    limit: int
    next_cursor: str | None


class InventoryPage(CamelModel):
    data: list[InventoryRow]
    pagination: CursorPagination


class InventoryUpdate(CamelModel):
    """Absent fields are unchanged; `null` removes a rule (available cannot be removed)."""

    user_id: str = Field(min_length=1, max_length=128)
    available: int | None = Field(None, ge=0, le=2**31 - 1)
    buffer: int | None = Field(None, ge=0, le=2**31 - 1)
    zero_below: int | None = Field(None, ge=0, le=2**31 - 1)
    max_quantity: int | None = Field(None, ge=0, le=2**31 - 1)
    low_stock_at: int | None = Field(None, ge=0, le=2**31 - 1)


class SkuMappingUpdate(CamelModel):
    user_id: str = Field(min_length=1, max_length=128)
    listing_id: int = Field(ge=1, le=2**63 - 1)
    master_sku: str | None = Field(min_length=1, max_length=128)


class SkuMappingBulk(CamelModel):
    """Many links at once: each row `{listingId, masterSku}` is checked on its own (a bad row
    is an error in its result, not a 422)."""

    user_id: str = Field(min_length=1, max_length=128)
    items: list[dict[str, Any]] = Field(min_length=1, max_length=5000)


class LedgerEntryOut(CamelModel):
    id: int
    kind: LedgerKind
    at: datetime
    quantity: int
    available_after: int
    oversold: bool
    order_id: int | None
    connection_id: uuid.UUID | None
    listing_id: int | None
    platform_code: str | None
    message: str | None


class LedgerPage(CamelModel):
    data: list[LedgerEntryOut]
    pagination: CursorPagination
