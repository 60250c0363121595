"""Hostile or odd push input (issue 17 point 5, issue 16 Lazada dedupe): every push is stored or
answered 4xx, never 500; a push older than WEBHOOK_MAX_AGE_HOURS is refused."""

from __future__ import annotations

import time

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.platforms.types import PlatformCode
from app.platforms.webhooks import parser_for
from tests.conftest import RunningSandbox
from tests.sync.conftest import connect_shop
from tests.webhooks.conftest import PUSH_URL, encode, lazada_push, signed, stored_events


def strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [*value, *(s for v in value.values() for s in strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


async def post(api: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await api.post(
        PUSH_URL, content=body, headers={"Content-Type": "application/json", **headers}
    )


async def test_lazada_pushes_of_two_orders_with_empty_line_ids_are_two_events(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    _, credentials = await connect_shop(api, sandbox, "lazada")
    now = int(time.time())
    bodies = [
        lazada_push(
            credentials["shopId"],
            order_status="pending",
            trade_order_id=order_id,
            trade_order_line_id="",
            status_update_time=now,
        )
        for order_id in ("1000001", "1000002")
    ]

    for body in bodies:
        response = await post(api, body, signed("lazada", credentials, body))
        assert response.status_code == 200, response.text

    events = await stored_events(session_factory)
    assert len(events) == 2
    assert len({e.dedupe_key for e in events}) == 2


@pytest.mark.parametrize("platform", ["shopee", "lazada", "facebook"])
async def test_a_signed_push_holding_a_nul_is_stored_losslessly(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    platform: str,
) -> None:
    _, credentials = await connect_shop(api, sandbox, platform)
    now = int(time.time())
    note = "gift\u0000wrap \\0 \\\\ end\u0000"
    shop = credentials["shopId"]
    document: dict = {
        "shopee": {
            "data": {"ordersn": "250101NUL\u0000SN", "status": "READY", "update_time": now},
            "shop_id": int(shop),
            "code": 3,
            "timestamp": now,
            "note\u0000key": note,
        },
        "lazada": {
            "seller_id": shop,
            "message_type": 0,
            "data": {
                "order_status": "pending",
                "trade_order_id": "1000\u00009",
                "trade_order_line_id": "2000001",
                "status_update_time": now,
                "remark": note,
            },
            "timestamp": now * 1000,
        },
        "facebook": {
            "object": "page",
            "entry": [
                {
                    "id": shop,
                    "time": now,
                    "changes": [{"field": "feed", "value": {"verb": "add", "message": note}}],
                }
            ],
        },
    }[platform]
    body = encode(document)
    assert b"\\u0000" in body

    response = await post(api, body, signed(platform, credentials, body))

    assert response.status_code == 200, response.text
    [event] = await stored_events(session_factory)
    assert "\x00" not in event.dedupe_key
    # What is read back for processing is exactly what the marketplace sent.
    from app.webhooks.service import stored_document

    restored = stored_document(event.payload)
    parser = parser_for(PlatformCode(platform))
    [parsed] = parser.parse(document, body)
    assert restored == parsed.payload
    assert note in strings(restored)


@pytest.mark.parametrize("platform", ["shopee", "lazada", "facebook"])
async def test_a_shop_id_holding_a_nul_is_400_before_any_lookup(
    api: httpx.AsyncClient,
    session_factory: async_sessionmaker[AsyncSession],
    platform: str,
) -> None:
    document = {
        "shopee": {"shop_id": "12\u000034", "code": 3, "data": {}, "timestamp": 1},
        "lazada": {"seller_id": "12\u000034", "message_type": 0, "data": {}},
        "facebook": {"object": "page", "entry": [{"id": "12\u000034", "changes": []}]},
    }[platform]
    headers = (
        {"X-Hub-Signature-256": "sha256=" + "0" * 64}
        if platform == "facebook"
        else {"Authorization": "0" * 64}
    )

    response = await post(api, encode(document), headers)

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_webhook" and "NUL" in error["message"]
    assert await stored_events(session_factory) == []


@pytest.mark.parametrize("platform", ["shopee", "lazada", "facebook"])
async def test_a_signed_push_older_than_the_max_age_is_401(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    platform: str,
) -> None:
    _, credentials = await connect_shop(api, sandbox, platform)
    shop = credentials["shopId"]

    def push(sent: int) -> bytes:
        return encode(
            {
                "shopee": {
                    "data": {"ordersn": f"2501{sent}", "status": "READY", "update_time": sent},
                    "shop_id": int(shop),
                    "code": 3,
                    "timestamp": sent,
                },
                "lazada": {
                    "seller_id": shop,
                    "message_type": 0,
                    "data": {
                        "order_status": "pending",
                        "trade_order_id": str(sent),
                        "trade_order_line_id": "1",
                        "status_update_time": sent,
                    },
                    "timestamp": sent * 1000,  # Lazada's timestamp is in milliseconds
                },
                "facebook": {
                    "object": "page",
                    "entry": [
                        {
                            "id": shop,
                            "time": sent,
                            "changes": [{"field": "feed", "value": {"message": str(sent)}}],
                        }
                    ],
                },
            }[platform]
        )

    stale = push(int(time.time()) - 73 * 3600)
    recent = push(int(time.time()) - 71 * 3600)

    refused = await post(api, stale, signed(platform, credentials, stale))
    accepted = await post(api, recent, signed(platform, credentials, recent))

    assert refused.status_code == 401, refused.text
    assert "72" in refused.json()["error"]["message"]
    assert accepted.status_code == 200, accepted.text
    assert len(await stored_events(session_factory)) == 1
