"""Meta Graph webhooks (reference §3.4 and §6): the subscribe handshake and Page events.

`X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>`. A delivery is
`{"object": "page", "entry": [...]}` and may batch several Pages of one app, each entry many
changes or Messenger events; every one of them becomes its own event."""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any, ClassVar

from app.platforms.facebook.auth import hub_signature_256
from app.platforms.types import PlatformCode
from app.platforms.webhooks import (
    EventKind,
    PushRequest,
    SigningKey,
    WebhookEvent,
    canonical_digest,
    epoch_time,
    iso_time,
    text_id,
)

SOCIAL_FIELDS = frozenset({"feed", "messages", "live_videos", "mention"})
ORDER_FIELD = "commerce_orders"


def verify_handshake(
    mode: str | None, token: str | None, challenge: str | None, expected: str | None
) -> str | None:
    """The challenge to echo when the subscription request is ours, else None."""
    if mode != "subscribe" or not expected or token is None or challenge is None:
        return None
    if not hmac.compare_digest(token.encode(), expected.encode()):
        return None
    return challenge


def _entries(document: Any) -> list[dict[str, Any]]:
    if not isinstance(document, dict) or not isinstance(document.get("entry"), list):
        return []
    return [entry for entry in document["entry"] if isinstance(entry, dict)]


def _items(entry: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = entry.get(key)
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


class FacebookPushParser:
    platform: ClassVar[PlatformCode] = PlatformCode.FACEBOOK
    # Meta documents no commerce-order topic (reference §3.3, unconfirmed); a `commerce_orders`
    # change (the sandbox's name) names an order and is read as the sync reads.
    order_event_types: ClassVar[frozenset[str]] = frozenset({ORDER_FIELD})

    def shop_ids(self, document: Any) -> list[str]:
        pages = (text_id(entry.get("id")) for entry in _entries(document))
        return list(dict.fromkeys(page for page in pages if page))

    def sent_at(self, document: Any) -> datetime | None:
        times = [epoch_time(entry.get("time")) for entry in _entries(document)]
        known = [moment for moment in times if moment is not None]
        return min(known) if known else None

    def verify(self, push: PushRequest, key: SigningKey) -> bool:
        header = push.headers.get("x-hub-signature-256")
        if not header:
            return False
        expected = hub_signature_256(key.api_secret, push.body)
        return hmac.compare_digest(expected.encode(), header.strip().lower().encode())

    def parse(self, document: Any, body: bytes) -> list[WebhookEvent]:
        """One event per change of every entry and per Messenger event: Meta batches up to
        1,000 updates of several Pages in one delivery. Each event's payload is the envelope
        with its one entry holding just that change, so it is handled (and parsed again) on
        its own."""
        events = []
        for entry in _entries(document):
            page_id = text_id(entry.get("id"))
            if page_id is None:
                continue
            head = {k: v for k, v in entry.items() if k not in ("changes", "messaging")}
            for change in _items(entry, "changes"):
                events.append(self._change(document, page_id, head, change))
            for message in _items(entry, "messaging"):
                payload = {
                    "object": document.get("object"),
                    "entry": [{**head, "messaging": [message]}],
                }
                events.append(
                    WebhookEvent(
                        platform=self.platform,
                        shop_id=page_id,
                        event_type="messages",
                        kind=EventKind.SOCIAL,
                        dedupe_key=f"messaging:{canonical_digest([page_id, message])}",
                        payload=payload,
                    )
                )
        return events

    def _change(
        self, document: dict[str, Any], page_id: str, head: dict[str, Any], change: dict[str, Any]
    ) -> WebhookEvent:
        field = str(change.get("field") or "unknown")[:64]
        value = change.get("value")
        value = value if isinstance(value, dict) else {}
        kind = EventKind.SOCIAL if field in SOCIAL_FIELDS else EventKind.OTHER
        order_id = text_id(value.get("order_id")) if field == ORDER_FIELD else None
        if order_id is not None:
            kind = EventKind.ORDER
        # The change's own content, not the entry's delivery time: a redelivery is the same.
        dedupe = f"change:{canonical_digest([page_id, change])}"
        return WebhookEvent(
            platform=self.platform,
            shop_id=page_id,
            event_type=field,
            kind=kind,
            dedupe_key=dedupe,
            payload={"object": document.get("object"), "entry": [{**head, "changes": [change]}]},
            order_ids=(order_id,) if order_id else (),
            changed_at=(iso_time(value.get("last_updated")) or epoch_time(head.get("time")))
            if order_id
            else None,
        )


PARSER = FacebookPushParser()
