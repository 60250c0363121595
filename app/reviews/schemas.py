from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from app.schemas import CamelModel


class ReviewSyncRequest(CamelModel):
    connection_id: uuid.UUID
    user_id: str = Field(min_length=1, max_length=128)


class ReviewSyncQueued(CamelModel):
    connection_id: uuid.UUID
    status: str  # "queued": the job runs in the worker; GET .../reviews shows its result


class ReplyRequest(CamelModel):
    user_id: str = Field(min_length=1, max_length=128)
    # Bounds beyond these (the platform's limit, REVIEW_REPLY_MAX_CHARS) are checked by the
    # service, so the 422 names the field either way.
    text: str = Field(max_length=5000)


class ReviewReplyOut(CamelModel):
    text: str
    at: datetime | None


class ReviewOut(CamelModel):
    id: int
    connection_id: uuid.UUID
    platform_code: str
    external_review_id: str
    external_product_id: str
    rating: int | None
    text: str
    buyer_name: str | None  # masked: first and last character
    product_name: str | None
    sku: str | None  # the master SKU when the listing is linked, else the listing's SKU
    created_at: datetime
    can_reply: bool | None
    reply: ReviewReplyOut | None


class ReviewPagination(CamelModel):
    limit: int
    next_cursor: str | None


class ReviewPage(CamelModel):
    data: list[ReviewOut]
    pagination: ReviewPagination
