"""Wire shapes of the webhook inbox (INTERFACE.md, Webhooks)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import Field

from app.schemas import CamelModel


class WebhookStatus(StrEnum):
    RECEIVED = "received"
    PROCESSED = "processed"
    FAILED = "failed"
    IGNORED = "ignored"


class WebhookEventOut(CamelModel):
    id: int
    connection_id: uuid.UUID | None
    platform_code: str
    event_type: str
    status: WebhookStatus
    attempts: int
    received_at: datetime
    processed_at: datetime | None
    error_message: str | None


class WebhookPagination(CamelModel):
    limit: int
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next (older) page; null on the last page"
    )


class WebhookEventPage(CamelModel):
    data: list[WebhookEventOut]
    pagination: WebhookPagination


class WebhookEventResponse(CamelModel):
    data: WebhookEventOut
