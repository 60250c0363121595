"""TikTok Shop pushes (reference §4.9): `{type, tts_notification_id, shop_id, timestamp, data}`.
Type 1 is an order status change, 11 a cancellation status change (both name `order_id`),
4 a package update, 6 the seller's deauthorization, 7 an authorization about to expire.

Signature: the `Authorization` header, HMAC-SHA256 keyed with the app secret over the app key
and the raw body (two third-party clients agree; official text unconfirmed, so the prefix is
the setting TIKTOK_WEBHOOK_SIGN_PREFIX: `app_key` or `none`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from app.platforms.tiktok.auth import verify_push
from app.platforms.types import PlatformCode
from app.platforms.webhooks import (
    EventKind,
    PushRequest,
    SigningKey,
    WebhookEvent,
    epoch_time,
    text_id,
)

_EVENT_TYPES: dict[int, tuple[str, EventKind]] = {
    1: ("order_status_change", EventKind.ORDER),
    3: ("recipient_address_update", EventKind.ORDER),
    4: ("package_update", EventKind.OTHER),
    5: ("product_status_change", EventKind.PRODUCT),
    6: ("seller_deauthorization", EventKind.AUTHORIZATION),
    7: ("upcoming_authorization_expiration", EventKind.AUTHORIZATION),
    11: ("cancellation_status_change", EventKind.ORDER),
    12: ("return_status_change", EventKind.ORDER),
    15: ("product_information_change", EventKind.PRODUCT),
    16: ("product_creation", EventKind.PRODUCT),
    27: ("inventory_status_change", EventKind.STOCK),
}


def is_tiktok_push(document: Any) -> bool:
    return (
        isinstance(document, dict)
        and "type" in document
        and "tts_notification_id" in document
        and "shop_id" in document
    )


class TikTokPushParser:
    platform: ClassVar[PlatformCode] = PlatformCode.TIKTOK
    order_event_types: ClassVar[frozenset[str]] = frozenset(
        {
            "order_status_change",
            "recipient_address_update",
            "cancellation_status_change",
            "return_status_change",
        }
    )

    def shop_ids(self, document: Any) -> list[str]:
        shop_id = text_id(document.get("shop_id")) if isinstance(document, dict) else None
        return [shop_id] if shop_id else []

    def sent_at(self, document: Any) -> datetime | None:
        return epoch_time(document.get("timestamp")) if isinstance(document, dict) else None

    def verify(self, push: PushRequest, key: SigningKey) -> bool:
        # TIKTOK_WEBHOOK_SIGN_PREFIX, as the receiver hands it over.
        prefix = str(push.extra.get("webhook_sign_prefix") or "app_key")
        header = push.headers.get("authorization")
        return verify_push(key.api_key, key.api_secret, push.body, header, prefix)

    def parse(self, document: Any, body: bytes) -> list[WebhookEvent]:
        if not is_tiktok_push(document):
            return []
        shop_id = text_id(document.get("shop_id"))
        push_type = document.get("type")
        if shop_id is None or type(push_type) is not int:
            return []
        data = document.get("data")
        data = data if isinstance(data, dict) else {}
        event_type, kind = _EVENT_TYPES.get(push_type, (f"type_{push_type}", EventKind.OTHER))
        order_id = text_id(data.get("order_id"))
        if kind is EventKind.ORDER and not order_id:
            kind = EventKind.OTHER
        notification = text_id(document.get("tts_notification_id")) or ""
        status, reason = None, None
        if push_type == 6:
            status = "reauth_required"
            reason = "The seller withdrew this app's authorization on TikTok Shop (push type 6)"
        elif push_type == 7:
            reason = (
                "TikTok Shop says this shop's authorization expires soon (push type 7); "
                "re-authorize the shop"
            )
        return [
            WebhookEvent(
                platform=self.platform,
                shop_id=shop_id,
                event_type=event_type,
                kind=kind,
                # Redeliveries carry the same notification id.
                dedupe_key=f"{push_type}:{notification}",
                payload=document,
                order_ids=(order_id,) if kind is EventKind.ORDER and order_id else (),
                changed_at=epoch_time(data.get("update_time") or data.get("create_time")),
                connection_status=status,
                status_reason=reason,
            )
        ]


PARSER = TikTokPushParser()
