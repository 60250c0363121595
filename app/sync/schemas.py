from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from app.models.enums import SyncStatus, SyncTrigger
from app.schemas import CamelModel


class SyncRequest(CamelModel):
    connection_id: uuid.UUID
    user_id: str = Field(min_length=1, max_length=128)
    full: bool = Field(False, description="Backfill the whole window instead of an increment")


class SyncSummary(CamelModel):
    sync_log_id: uuid.UUID
    connection_id: uuid.UUID
    kind: str = Field(description="`orders`, or `products` for a product sync")
    status: SyncStatus
    trigger: SyncTrigger
    full: bool
    orders_fetched: int
    orders_created: int
    orders_updated: int
    orders_unchanged: int
    orders_failed: int
    products_fetched: int = 0
    products_created: int = 0
    products_updated: int = 0
    pages_done: int
    started_at: datetime
    finished_at: datetime | None
    error_message: str | None
    details: dict[str, Any]


class SyncLogPage(CamelModel):
    data: list[SyncSummary]
    pagination: dict[str, int]
