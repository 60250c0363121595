"""Meta Graph webhooks (reference §3.4 and §6): the subscribe handshake and Page events.

`X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>`. A delivery is
`{"object": "page", "entry": [...]}` and may batch several Pages of one app; each entry (one
Page's `changes` or `messaging`) becomes one event. Meta has no commerce-order topic: orders
still come from the sync, and Page events wait for the social-orders issue."""

from __future__ import annotations

import hmac
from typing import Any, ClassVar

from app.platforms.facebook.auth import hub_signature_256
from app.platforms.types import PlatformCode
from app.platforms.webhooks import (
    EventKind,
    PushRequest,
    SigningKey,
    WebhookEvent,
    canonical_digest,
    text_id,
)

SOCIAL_FIELDS = frozenset({"feed", "messages", "live_videos", "mention"})


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


class FacebookPushParser:
    platform: ClassVar[PlatformCode] = PlatformCode.FACEBOOK
    # Meta pushes no orders (orders come from the sync).
    order_event_types: ClassVar[frozenset[str]] = frozenset()

    def shop_ids(self, document: Any) -> list[str]:
        pages = (text_id(entry.get("id")) for entry in _entries(document))
        return list(dict.fromkeys(page for page in pages if page))

    def verify(self, push: PushRequest, key: SigningKey) -> bool:
        header = push.headers.get("x-hub-signature-256")
        if not header:
            return False
        expected = hub_signature_256(key.api_secret, push.body)
        return hmac.compare_digest(expected.encode(), header.strip().lower().encode())

    def parse(self, document: Any, body: bytes) -> list[WebhookEvent]:
        events = []
        for entry in _entries(document):
            page_id = text_id(entry.get("id"))
            if page_id is None:
                continue
            if isinstance(entry.get("messaging"), list):
                fields = ["messages"]
            else:
                changes = entry.get("changes")
                changes = changes if isinstance(changes, list) else []
                fields = sorted(
                    {str(c.get("field")) for c in changes if isinstance(c, dict) and c.get("field")}
                )
            event_type = ",".join(fields) or "unknown"
            social = bool(fields) and set(fields) <= SOCIAL_FIELDS
            events.append(
                WebhookEvent(
                    platform=self.platform,
                    shop_id=page_id,
                    event_type=event_type[:64],
                    kind=EventKind.SOCIAL if social else EventKind.OTHER,
                    dedupe_key=f"entry:{canonical_digest(entry)}",
                    payload={"object": document.get("object"), "entry": [entry]},
                )
            )
        return events


PARSER = FacebookPushParser()
