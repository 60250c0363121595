"""Live sessions and captured comments on the wire (camelCase)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import Field, PlainSerializer, field_validator, model_validator

from app.live.parsing import normalize_code
from app.live.templates import MAX_MESSAGE_CHARS, check_template
from app.schemas import CamelModel

UserId = Annotated[str, Field(min_length=1, max_length=128)]
Price = Annotated[
    Decimal,
    Field(ge=0, le=Decimal("1e12"), max_digits=16, decimal_places=4),
    PlainSerializer(lambda v: format(v, "f"), return_type=str, when_used="always"),
]
_CODE = Field(min_length=1, max_length=16, description='What the seller says on camera ("A12")')


class SessionStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class CommentOutcome(StrEnum):
    ORDERED = "ordered"
    WAITLISTED = "waitlisted"
    NOT_AN_ORDER = "not_an_order"
    REMOVED = "removed"


def _clean_code(value: str) -> str:
    code = normalize_code(value)
    if not code.isascii() or not code.isalnum():
        raise ValueError("a code is Latin letters and digits only")
    return code


class LiveProductIn(CamelModel):
    code: Annotated[str, _CODE]
    sku: str = Field(min_length=1, max_length=128, description="The master SKU")
    price: Price
    quantity: int | None = Field(
        None,
        ge=0,
        le=1_000_000,
        description="At most this many units sell in this live (default: the SKU's stock)",
    )

    _code = field_validator("code")(classmethod(lambda cls, v: _clean_code(v)))


class LiveSessionCreate(CamelModel):
    user_id: UserId
    connection_id: uuid.UUID
    post_id: str = Field(min_length=1, max_length=128, description="The live video's post id")
    products: list[LiveProductIn] = Field(default_factory=list, max_length=500)
    keyword: str = Field("CF", min_length=1, max_length=16)
    currency: str = Field("THB", min_length=3, max_length=3)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    reply_template: str | None = Field(
        None,
        max_length=MAX_MESSAGE_CHARS,
        description="Message to buyers; {buyerName}, {orderNumber}, {lines}, {waitlist}, "
        "{total}, {currency} are filled in, any other {...} is refused (422); a message "
        f"is cut to {MAX_MESSAGE_CHARS} characters, Messenger's limit (default: a Thai message)",
    )

    _keyword = field_validator("keyword")(classmethod(lambda cls, v: _clean_code(v)))
    _template = field_validator("reply_template")(classmethod(lambda cls, v: check_template(v)))

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        return value.upper()

    @model_validator(mode="after")
    def _distinct_codes(self) -> LiveSessionCreate:
        codes = [p.code for p in self.products]
        if len(codes) != len(set(codes)):
            raise ValueError("each product code appears once")
        if self.starts_at and self.ends_at and self.ends_at < self.starts_at:
            raise ValueError("endsAt must not be before startsAt")
        return self


class LiveSessionUpdate(CamelModel):
    user_id: UserId
    products: list[LiveProductIn] | None = Field(
        None, max_length=500, description="Added, or changed when the code exists"
    )
    status: SessionStatus | None = None
    ends_at: datetime | None = None
    reply_template: str | None = Field(
        None, max_length=MAX_MESSAGE_CHARS, description='As on create; "" restores the default'
    )

    _template = field_validator("reply_template")(classmethod(lambda cls, v: check_template(v)))

    @model_validator(mode="after")
    def _distinct_codes(self) -> LiveSessionUpdate:
        codes = [p.code for p in self.products or ()]
        if len(codes) != len(set(codes)):
            raise ValueError("each product code appears once")
        return self


class LiveProductOut(CamelModel):
    code: str
    sku: str
    price: Price
    quantity: int | None
    reserved: int = Field(description="Units this live's open and paid orders hold")
    waiting: int = Field(description="Units asked for on the waiting list")


class LiveSessionOut(CamelModel):
    id: uuid.UUID
    user_id: str
    connection_id: uuid.UUID
    post_id: str
    keyword: str
    status: SessionStatus
    currency: str
    reply_template: str | None
    starts_at: datetime | None
    ends_at: datetime | None
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    products: list[LiveProductOut]


class LiveCommentOut(CamelModel):
    comment_id: str
    buyer_id: str
    buyer_name: str | None
    message: str
    outcome: CommentOutcome
    order_id: int | None
    commented_at: datetime


class LiveSessionList(CamelModel):
    data: list[LiveSessionOut]


class LiveCommentList(CamelModel):
    data: list[LiveCommentOut]


class OrderAction(CamelModel):
    user_id: UserId
