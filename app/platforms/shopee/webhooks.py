"""Shopee pushes (reference §1.8 and §6): signature, event codes, and the lost-push calls.

`Authorization` = lowercase hex HMAC-SHA256(partner key, callback URL + "|" + raw body). A push
is `{"shop_id", "code", "timestamp", "data"}`; codes 3 (order status) and 4 (tracking number)
name an order, 1, 2 and 12 are about the shop's authorization."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import httpx
import orjson

from app.platforms.http import PlatformTransport
from app.platforms.shopee.auth import ShopeeAuth, push_signature
from app.platforms.shopee.mapping import classify_response
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

LOST_PUSH = "/api/v2/push/get_lost_push_message"
CONFIRM_LOST_PUSH = "/api/v2/push/confirm_consumed_lost_push_message"

_EVENT_TYPES: dict[int, tuple[str, EventKind]] = {
    1: ("shop_authorization", EventKind.AUTHORIZATION),
    2: ("shop_deauthorization", EventKind.AUTHORIZATION),
    3: ("order_status", EventKind.ORDER),
    4: ("tracking_number", EventKind.ORDER),
    5: ("shopee_updates", EventKind.OTHER),
    6: ("banned_item", EventKind.PRODUCT),
    7: ("item_promotion", EventKind.PRODUCT),
    8: ("reserved_stock_change", EventKind.STOCK),
    9: ("promotion_update", EventKind.PRODUCT),
    10: ("webchat", EventKind.OTHER),
    11: ("video_upload", EventKind.PRODUCT),
    12: ("authorization_expiry", EventKind.AUTHORIZATION),
    13: ("brand_register_result", EventKind.PRODUCT),
    15: ("shipping_document_status", EventKind.OTHER),
}


class ShopeePushParser:
    platform: ClassVar[PlatformCode] = PlatformCode.SHOPEE
    # Event types that name an order (the worker reads those of one shop together).
    order_event_types: ClassVar[frozenset[str]] = frozenset({"order_status", "tracking_number"})

    def shop_ids(self, document: Any) -> list[str]:
        shop_id = text_id(document.get("shop_id")) if isinstance(document, dict) else None
        return [shop_id] if shop_id else []

    def sent_at(self, document: Any) -> datetime | None:
        return epoch_time(document.get("timestamp")) if isinstance(document, dict) else None

    def verify(self, push: PushRequest, key: SigningKey) -> bool:
        header = push.headers.get("authorization")
        if not header:
            return False
        expected = push_signature(key.api_secret, push.callback_url, push.body)
        return hmac.compare_digest(expected.encode(), header.strip().encode())

    def parse(self, document: Any, body: bytes) -> list[WebhookEvent]:
        if not isinstance(document, dict):
            return []
        shop_id = text_id(document.get("shop_id"))
        code = document.get("code")
        if shop_id is None or type(code) is not int:
            return []
        data = document.get("data")
        data = data if isinstance(data, dict) else {}
        event_type, kind = _EVENT_TYPES.get(code, (f"code_{code}", EventKind.OTHER))
        order_sn = text_id(data.get("ordersn")) or text_id(data.get("order_sn"))
        orders: tuple[str, ...] = ()
        dedupe = None
        if kind is EventKind.ORDER and order_sn:
            orders = (order_sn,)
            if code == 3:
                dedupe = f"3:{order_sn}:{data.get('status')}:{data.get('update_time')}"
        elif kind is EventKind.ORDER:
            kind = EventKind.OTHER  # an order push that names no order: nothing to read
        if dedupe is None:  # hashed only when the push has no identity of its own
            dedupe = f"{code}:{canonical_digest(document)}"
        status, reason = None, None
        if code == 2:
            status = "reauth_required"
            reason = "The seller withdrew this app's authorization on Shopee (push code 2)"
        elif code == 12:
            reason = (
                "Shopee says this shop's authorization expires within 7 days (push code 12); "
                "re-authorize it before then"
            )
        return [
            WebhookEvent(
                platform=self.platform,
                shop_id=shop_id,
                event_type=event_type,
                kind=kind,
                dedupe_key=dedupe,
                payload=document,
                order_ids=orders,
                changed_at=epoch_time(data.get("update_time")) if orders else None,
                connection_status=status,
                status_reason=reason,
            )
        ]


PARSER = ShopeePushParser()


@dataclass(slots=True)
class LostPushPage:
    documents: list[dict[str, Any]]
    last_message_id: int | None
    has_next_page: bool


def _lost_push_documents(messages: object) -> list[dict[str, Any]]:
    """Lost messages carry `data` as a JSON string; rebuilt as the push that was lost."""
    documents = []
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, Mapping):
            continue
        data: Any = message.get("data")
        if isinstance(data, str):
            try:
                data = orjson.loads(data)
            except orjson.JSONDecodeError:
                data = {"raw": data}
        documents.append(
            {
                "shop_id": message.get("shop_id"),
                "code": message.get("code"),
                "timestamp": message.get("timestamp"),
                "data": data if data is not None else {},
            }
        )
    return documents


def _classify_lost_push(response: httpx.Response) -> dict[str, Any]:
    """Shopee's usual classification, except that these two pages sample `error` as "-" on
    success, which the usual rule would read as a failure."""
    if response.status_code < 400:
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            payload = None
        if isinstance(payload, dict) and payload.get("error") == "-":
            return payload
    return classify_response(response)


async def get_lost_push_messages(
    transport: PlatformTransport, base_url: str, partner_id: int, partner_key: str
) -> LostPushPage:
    """The earliest (at most 100) unconfirmed pushes of the last 3 days; a partner-level call."""

    payload = await transport.request(
        "GET",
        base_url.rstrip("/") + LOST_PUSH,
        classify=_classify_lost_push,
        auth=ShopeeAuth(partner_id=partner_id, partner_key=partner_key, api_path=LOST_PUSH),
    )
    body = payload.get("response") or {}
    last = body.get("last_message_id")
    return LostPushPage(
        documents=_lost_push_documents(body.get("push_message_list")),
        last_message_id=last if type(last) is int and last > 0 else None,
        has_next_page=bool(body.get("has_next_page")),
    )


async def confirm_lost_push_messages(
    transport: PlatformTransport,
    base_url: str,
    partner_id: int,
    partner_key: str,
    last_message_id: int,
) -> None:
    """Tell Shopee every lost push up to `last_message_id` is handled (so the next page moves)."""

    await transport.request(
        "POST",
        base_url.rstrip("/") + CONFIRM_LOST_PUSH,
        classify=_classify_lost_push,
        json_body={"last_message_id": last_message_id},
        auth=ShopeeAuth(partner_id=partner_id, partner_key=partner_key, api_path=CONFIRM_LOST_PUSH),
    )
