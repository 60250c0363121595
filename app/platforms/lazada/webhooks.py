"""Lazada pushes (LPM, reference §2.7 and §6): signature and message types.

`Authorization` = lowercase hex HMAC-SHA256(app secret, app key + raw body). A push is
`{"seller_id", "message_type", "data", "timestamp", "site"}`, one per order line; type 0 is a
trade-order status change, 10 a reverse order (return, refund, cancel), 8 a token expiry alert."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from app.platforms.lazada.auth import verify_push
from app.platforms.types import PlatformCode
from app.platforms.webhooks import (
    EventKind,
    PushRequest,
    SigningKey,
    WebhookEvent,
    canonical_digest,
    epoch_time,
    text_id,
)

_EVENT_TYPES: dict[int, tuple[str, EventKind]] = {
    0: ("trade_order", EventKind.ORDER),
    3: ("product_created", EventKind.PRODUCT),
    4: ("product_updated", EventKind.PRODUCT),
    5: ("product_deleted", EventKind.PRODUCT),
    6: ("low_stock", EventKind.STOCK),
    8: ("token_expiry", EventKind.AUTHORIZATION),
    10: ("reverse_order", EventKind.ORDER),
    12: ("category_tree", EventKind.OTHER),
    13: ("seller_status", EventKind.OTHER),
    35: ("purchase_order", EventKind.OTHER),
}


class LazadaPushParser:
    platform: ClassVar[PlatformCode] = PlatformCode.LAZADA
    # Event types that name an order (the worker reads those of one shop together).
    order_event_types: ClassVar[frozenset[str]] = frozenset({"trade_order", "reverse_order"})

    def shop_ids(self, document: Any) -> list[str]:
        seller_id = text_id(document.get("seller_id")) if isinstance(document, dict) else None
        return [seller_id] if seller_id else []

    def sent_at(self, document: Any) -> datetime | None:
        return epoch_time(document.get("timestamp")) if isinstance(document, dict) else None

    def verify(self, push: PushRequest, key: SigningKey) -> bool:
        header = push.headers.get("authorization")
        return verify_push(key.api_key, key.api_secret, push.body, header)

    def parse(self, document: Any, body: bytes) -> list[WebhookEvent]:
        if not isinstance(document, dict):
            return []
        seller_id = text_id(document.get("seller_id"))
        message_type = document.get("message_type")
        if seller_id is None or type(message_type) is not int:
            return []
        data = document.get("data")
        data = data if isinstance(data, dict) else {}
        event_type, kind = _EVENT_TYPES.get(message_type, (f"type_{message_type}", EventKind.OTHER))
        order_id = text_id(data.get("trade_order_id"))
        dedupe = f"{message_type}:{canonical_digest(document)}"
        # Lazada pushes per order line and retries with the same line and state (LZ-LPM-ZH).
        # The order id is part of the key: a line id may be empty, and two orders' lines in
        # the same state at the same second must stay two events.
        if message_type == 0 and order_id:
            line = text_id(data.get("trade_order_line_id"))
            status, at = data.get("order_status"), data.get("status_update_time")
            dedupe = f"0:{order_id}:{line}:{status}:{at}"
        elif message_type == 10 and order_id:
            line = text_id(data.get("reverse_order_line_id"))
            status, at = data.get("reverse_status"), data.get("status_update_time")
            dedupe = f"10:{order_id}:{line}:{status}:{at}"
        if kind is EventKind.ORDER and not order_id:
            kind = EventKind.OTHER
        reason = None
        if message_type == 8:
            reason = (
                "Lazada says this seller's access token expires soon (push type 8); "
                "re-authorize the shop if the token cannot be refreshed"
            )
        return [
            WebhookEvent(
                platform=self.platform,
                shop_id=seller_id,
                event_type=event_type,
                kind=kind,
                dedupe_key=dedupe,
                payload=document,
                order_ids=(order_id,) if kind is EventKind.ORDER and order_id else (),
                changed_at=epoch_time(data.get("status_update_time")),
                status_reason=reason,
            )
        ]


PARSER = LazadaPushParser()
