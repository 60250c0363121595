"""What every marketplace's push parser gives the webhooks domain: a normalized `WebhookEvent`.

Each `app/platforms/<marketplace>/webhooks.py` knows its platform's field names, signature and
event codes; nothing outside `platforms/` does. Receiving is two steps on purpose: `shop_ids`
reads just enough of an unverified body to find whose secret checks it, and `parse` runs only
after the signature held."""

from __future__ import annotations

import functools
import hashlib
import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

import orjson

from app.platforms.types import PlatformCode


class EventKind(StrEnum):
    ORDER = "order"  # an order changed: read it again and upsert it
    AUTHORIZATION = "authorization"  # the shop's authorization changed
    PRODUCT = "product"  # stored for the products issue
    STOCK = "stock"  # stored for the products issue
    SOCIAL = "social"  # Meta Page feed / Messenger events, for the social-orders issue
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class SigningKey:
    """The secrets of one connection that owns the shop a push names."""

    api_key: str
    api_secret: str


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    platform: PlatformCode
    shop_id: str
    event_type: str
    kind: EventKind
    # The platform's identity of the event; a redelivery has the same one.
    dedupe_key: str
    payload: dict[str, Any]
    order_ids: tuple[str, ...] = ()
    # When the platform says the order changed (bounds the update window it is read from).
    changed_at: datetime | None = None
    # Authorization events: "reauth_required" (access withdrawn), or None to keep the status.
    connection_status: str | None = None
    status_reason: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class PushRequest:
    """A push as received: raw bytes, the JSON decoded from them, and what signs it."""

    body: bytes
    document: Any
    headers: Mapping[str, str]
    callback_url: str
    extra: dict[str, Any] = field(default_factory=dict)


class PushParser(Protocol):
    platform: PlatformCode
    # The `event_type`s of ORDER events (the worker claims waiting ones together).
    order_event_types: frozenset[str]

    def shop_ids(self, document: Any) -> list[str]:
        """The shops an unverified body names (nothing else is read before verification)."""
        ...

    def verify(self, push: PushRequest, key: SigningKey) -> bool: ...

    def sent_at(self, document: Any) -> datetime | None:
        """When the platform sent the push, by its own timestamp (the oldest one it holds);
        None when it carries none."""
        ...

    def parse(self, document: Any, body: bytes) -> list[WebhookEvent]:
        """Events of a verified body; parsing a stored event's payload again yields it back."""
        ...


class UnrecognizedPush(ValueError):
    """The body is JSON but no platform's push shape."""


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def canonical_digest(document: Any) -> str:
    """A hash of the content, not of the bytes: the same event sent again with other spacing
    or key order (a Shopee lost push rebuilt from its `data`) has the same identity."""
    return body_digest(orjson.dumps(document, option=orjson.OPT_SORT_KEYS))


def detect_platform(headers: Mapping[str, str], document: Any) -> PlatformCode:
    """The platform of a push on the shared URL (INTERFACE.md, Webhooks)."""
    if "x-hub-signature-256" in headers:
        return PlatformCode.FACEBOOK
    if isinstance(document, dict):
        if {"type", "tts_notification_id", "shop_id"} <= document.keys():
            return PlatformCode.TIKTOK
        if "message_type" in document and "seller_id" in document:
            return PlatformCode.LAZADA
        if "code" in document and "shop_id" in document:
            return PlatformCode.SHOPEE
        if document.get("object") == "page":
            return PlatformCode.FACEBOOK
    raise UnrecognizedPush("The body is not a Shopee, Lazada, Meta or TikTok Shop push")


_PARSERS = {
    PlatformCode.SHOPEE: "app.platforms.shopee.webhooks:PARSER",
    PlatformCode.LAZADA: "app.platforms.lazada.webhooks:PARSER",
    PlatformCode.FACEBOOK: "app.platforms.facebook.webhooks:PARSER",
    PlatformCode.TIKTOK: "app.platforms.tiktok.webhooks:PARSER",
}


@functools.cache
def parser_for(platform: PlatformCode) -> PushParser:
    module_name, name = _PARSERS[platform].split(":")
    parser: PushParser = getattr(importlib.import_module(module_name), name)
    return parser


def text_id(value: object) -> str | None:
    """An id that platforms send as a number or a string, as text; None when absent."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | str) and str(value).strip():
        return str(value).strip()
    return None


# Unix times above this are in milliseconds (Lazada's `timestamp`, Messenger's `time`): in
# seconds it would be the year 5138.
_MILLISECONDS_FROM = 100_000_000_000


def epoch_time(value: object) -> datetime | None:
    """A Unix time in seconds or milliseconds, as platforms send them; None when unreadable."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    seconds = value / 1000 if value >= _MILLISECONDS_FROM else value
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def iso_time(value: object) -> datetime | None:
    """A Graph time (`2026-12-01T10:00:00+0000`) or an ISO-8601 one; None when unreadable."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def ids(values: Sequence[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))
