from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from app.models.enums import SyncStatus, SyncTrigger
from app.schemas import CamelModel


class ProductSyncRequest(CamelModel):
    connection_id: uuid.UUID
    user_id: str = Field(min_length=1, max_length=128)


class ProductSyncSummary(CamelModel):
    """The sync-log resource for a product sync (`kind: "products"`)."""

    sync_log_id: uuid.UUID
    connection_id: uuid.UUID
    kind: str
    status: SyncStatus
    trigger: SyncTrigger
    products_fetched: int
    products_created: int
    products_updated: int
    started_at: datetime
    finished_at: datetime | None
    error_message: str | None
    details: dict[str, Any]


class ListingOut(CamelModel):
    id: int
    connection_id: uuid.UUID
    platform_code: str
    external_product_id: str
    external_variation_id: str | None
    sku: str | None
    name: str
    variation_name: str | None
    price: str | None
    currency: str | None
    platform_stock: int | None
    status: str | None
    image_url: str | None
    master_sku: str | None
    synced_at: datetime


class ListingPagination(CamelModel):
    total: int | None
    limit: int
    offset: int
    next_cursor: str | None


class ListingPage(CamelModel):
    data: list[ListingOut]
    pagination: ListingPagination
