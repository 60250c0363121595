"""The TikTok Shop client's wire format and failure handling, against respx."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx

from app.config import ClientTuning
from app.platforms.base import ClientConfig, MemoryTokenStore
from app.platforms.errors import RateLimitedError, ReauthRequiredError
from app.platforms.tiktok import client as client_module
from app.platforms.tiktok.auth import TikTokAuth, push_signature, sign, verify_push
from app.platforms.tiktok.client import TikTokClient
from app.platforms.tiktok.mapping import TikTokSignatureError, map_order
from app.platforms.types import Credentials, OrderStatus, StockUpdate

API = "https://open-api.tiktokglobalshop.com"
AUTH = "https://auth.tiktok-shops.com"
SECRET = "app-secret"
SHOP = "7000714532876273420"
CIPHER = "GCP_XF90igAAAABh00qsWgtvOiGFNqyubMt3"


def make_client(options: dict[str, str] | None = None) -> tuple[TikTokClient, MemoryTokenStore]:
    client_module._CIPHERS.clear()
    tuning = ClientTuning.model_construct(
        calls_per_second=10_000,
        detail_concurrency=4,
        backoff_base_seconds=0.001,
        backoff_cap_seconds=0.01,
        max_attempts=4,
        max_wait_seconds=300,
        timeout_seconds=5,
    )
    creds = Credentials(
        shop_id=SHOP,
        api_key="29a39d",
        api_secret=SECRET,
        access_token="access-1",
        refresh_token="refresh-1",
    )
    store = MemoryTokenStore(creds)
    config = ClientConfig(base_url=API, auth_url=AUTH, tuning=tuning, options=options or {})
    return TikTokClient(creds, config, token_store=store), store


def envelope(data: Any, code: int = 0, message: str = "Success") -> dict[str, Any]:
    return {"code": code, "message": message, "request_id": "req-1", "data": data}


SHOPS = envelope(
    {"shops": [{"id": SHOP, "name": "Maomao beauty shop", "region": "TH", "cipher": CIPHER}]}
)


def test_published_signing_example() -> None:
    """Reference §4.3: the worked example of TikTok's sign-your-api-request page."""
    params = {"app_key": "29a39d", "timestamp": "1623812664", "sign": "x", "access_token": "t"}
    assert (
        sign("/authorization/202309/shops", params, "e59af819cc")
        == "b596b73e0cc6de07ac26f036364178ab16b0a907af13d43f0a0cd2345f582dc8"
    )


def test_body_is_signed_verbatim() -> None:
    body = b'{"address":"https://partner.tiktokshop.com","event_type":"PACKAGE_UPDATE"}'
    params = {"app_key": "k", "timestamp": "1696909648", "shop_cipher": "ROW_x"}
    assert sign("/event/202309/webhooks", params, "s", body) != sign(
        "/event/202309/webhooks", params, "s"
    )


def test_auth_adds_query_sign_and_token_header() -> None:
    request = httpx.Request(
        "POST",
        f"{API}/order/202309/orders/search?page_size=10&shop_cipher={CIPHER}",
        json={"update_time_ge": 1},
    )
    flow = TikTokAuth("29a39d", SECRET, "tok", clock=lambda: "1700000000").auth_flow(request)
    signed = next(flow)
    query = dict(signed.url.params)
    assert signed.headers["x-tts-access-token"] == "tok"
    assert "access_token" not in query
    assert query["app_key"] == "29a39d" and query["timestamp"] == "1700000000"
    unsigned = {k: v for k, v in query.items() if k != "sign"}
    assert query["sign"] == sign(signed.url.path, unsigned, SECRET, signed.content)


def test_push_signature_is_app_key_plus_body() -> None:
    body = b'{"type":1}'
    header = push_signature("key", "secret", body)
    assert verify_push("key", "secret", body, header)
    assert not verify_push("key", "other", body, header)
    assert not verify_push("key", "secret", body, push_signature("key", "secret", body, "none"))


@respx.mock
async def test_search_orders_pages_by_token_with_versions_and_cipher() -> None:
    client, _ = make_client({"orders_search": "202411", "shops": "202309"})
    respx.get(f"{API}/authorization/202309/shops").respond(json=SHOPS)
    now = int(datetime.now(UTC).timestamp()) - 100
    order = {
        "id": "576486316948490001",
        "status": "AWAITING_SHIPMENT",
        "create_time": now - 50,
        "update_time": now,
        "payment": {
            "currency": "THB",
            "sub_total": "180.00",
            "shipping_fee": "30.00",
            "seller_discount": "20.00",
            "platform_discount": "0.00",
            "total_amount": "210.00",
        },
        "line_items": [
            {
                "id": "1",
                "sku_id": "S1",
                "seller_sku": "SKU-1",
                "original_price": "100.00",
                "sale_price": "90.00",
            },
            {
                "id": "2",
                "sku_id": "S1",
                "seller_sku": "SKU-1",
                "original_price": "100.00",
                "sale_price": "90.00",
            },
        ],
    }
    route = respx.post(f"{API}/order/202411/orders/search").mock(
        side_effect=[
            httpx.Response(200, json=envelope({"next_page_token": "p2", "orders": [order]})),
            httpx.Response(200, json=envelope({"next_page_token": "", "orders": []})),
        ]
    )
    start = datetime.fromtimestamp(now - 3600, UTC)
    end = datetime.fromtimestamp(now + 60, UTC)
    pages = [page async for page in client.iter_orders(start, end)]
    await client.aclose()
    first, second = route.calls
    assert first.request.url.params["shop_cipher"] == CIPHER
    assert first.request.url.params["sort_field"] == "update_time"
    assert "page_token" not in first.request.url.params
    assert second.request.url.params["page_token"] == "p2"
    assert json.loads(first.request.content) == {
        "update_time_ge": now - 3600,
        "update_time_lt": now + 60,
    }
    (stored,) = pages[0].orders
    assert stored.status is OrderStatus.PENDING
    assert stored.total == Decimal("210.00") and stored.subtotal == Decimal("180.00")
    (item,) = stored.items
    assert item.quantity == 2 and item.unit_price == Decimal("100.00")
    assert item.discount == Decimal("20.00")
    assert pages[-1].resume_from == end


@respx.mock
async def test_expired_token_refreshes_with_absolute_expiry() -> None:
    client, store = make_client()
    respx.get(f"{API}/authorization/202309/shops").respond(json=SHOPS)
    expires = int((datetime.now(UTC) + timedelta(days=7)).timestamp())
    refresh = respx.get(f"{AUTH}/api/v2/token/refresh").respond(
        json=envelope(
            {
                "access_token": "access-2",
                "access_token_expire_in": expires,
                "refresh_token": "refresh-2",
                "refresh_token_expire_in": expires + 86400,
            }
        )
    )
    detail = respx.get(f"{API}/order/202309/orders").mock(
        side_effect=[
            httpx.Response(200, json=envelope(None, 105002, "access_token is expired")),
            httpx.Response(200, json=envelope({"orders": []})),
        ]
    )
    assert await client.get_orders(["1"]) == []
    await client.aclose()
    assert refresh.calls.last.request.url.params["grant_type"] == "refresh_token"
    assert detail.calls.last.request.headers["x-tts-access-token"] == "access-2"
    assert store.credentials.refresh_token == "refresh-2"
    assert store.credentials.access_expires_at == datetime.fromtimestamp(expires, UTC)


@respx.mock
async def test_bad_sign_is_a_clear_connection_error_not_retried() -> None:
    client, _ = make_client()
    route = respx.get(f"{API}/authorization/202309/shops").respond(
        json=envelope(None, 106001, "Invalid sign")
    )
    with pytest.raises(TikTokSignatureError, match="app secret"):
        await client.check_shop()
    await client.aclose()
    assert route.call_count == 1


@respx.mock
async def test_rate_limits_back_off_then_fail() -> None:
    client, _ = make_client()
    route = respx.get(f"{API}/authorization/202309/shops").mock(
        side_effect=[
            httpx.Response(429, json=envelope(None, 36009002, "Too many requests")),
            httpx.Response(200, json=envelope(None, 36009002, "Too many requests")),
            httpx.Response(200, json=SHOPS),
        ]
    )
    shop = await client.check_shop()
    assert shop.name == "Maomao beauty shop" and shop.shop_id == SHOP
    assert route.call_count == 3
    route.mock(return_value=httpx.Response(429, json=envelope(None, 36009002, "Too many")))
    with pytest.raises(RateLimitedError):
        await client.check_shop()
    await client.aclose()


@respx.mock
async def test_refused_refresh_needs_reauthorization() -> None:
    client, _ = make_client()
    respx.get(f"{API}/authorization/202309/shops").respond(json=envelope(None, 105002, "expired"))
    respx.get(f"{AUTH}/api/v2/token/refresh").respond(
        json=envelope(None, 36004004, "refresh_token is invalid")
    )
    with pytest.raises(ReauthRequiredError):
        await client.check_shop()
    await client.aclose()


@respx.mock
async def test_stock_push_names_every_warehouse_and_reads_partial_errors() -> None:
    client, _ = make_client()
    respx.get(f"{API}/authorization/202309/shops").respond(json=SHOPS)
    product = {
        "id": "P1",
        "title": "Tee",
        "status": "ACTIVATE",
        "skus": [
            {
                "id": "S1",
                "seller_sku": "A",
                "inventory": [
                    {"warehouse_id": "W1", "quantity": 1},
                    {"warehouse_id": "W2", "quantity": 4},
                ],
            },
            {"id": "S2", "seller_sku": "B", "inventory": [{"warehouse_id": "W1", "quantity": 2}]},
        ],
    }
    respx.post(f"{API}/product/202309/products/search").respond(
        json=envelope({"products": [product], "next_page_token": ""})
    )
    update = respx.post(f"{API}/product/202309/products/P1/inventory/update").respond(
        json=envelope(
            {
                "errors": [
                    {"code": 12052393, "message": "promotion lock", "detail": {"sku_id": "S2"}}
                ]
            }
        )
    )
    results = await client.update_stock(
        [StockUpdate("A", 7, "P1", "S1"), StockUpdate("B", 3, "P1", "S2"), StockUpdate("C", 1)]
    )
    await client.aclose()
    assert [(r.sku, r.ok) for r in results] == [("A", True), ("B", False), ("C", False)]
    assert results[1].message == "promotion lock"
    body = json.loads(update.calls.last.request.content)
    assert body["skus"][0] == {
        "id": "S1",
        "inventory": [{"warehouse_id": "W1", "quantity": 7}, {"warehouse_id": "W2", "quantity": 0}],
    }


def test_statuses_and_cancel_request() -> None:
    base = {"id": "1", "create_time": 1, "update_time": 2, "payment": {"total_amount": "1.00"}}
    expected = {
        "UNPAID": OrderStatus.UNPAID,
        "ON_HOLD": OrderStatus.PENDING,
        "AWAITING_SHIPMENT": OrderStatus.PENDING,
        "AWAITING_COLLECTION": OrderStatus.READY_TO_SHIP,
        "IN_TRANSIT": OrderStatus.SHIPPED,
        "DELIVERED": OrderStatus.DELIVERED,
        "COMPLETED": OrderStatus.COMPLETED,
        "CANCELLED": OrderStatus.CANCELLED,
        "CANCEL": OrderStatus.CANCELLED,
    }
    for raw, status in expected.items():
        assert map_order({**base, "status": raw}).status is status
    asked = map_order({**base, "status": "AWAITING_SHIPMENT", "is_buyer_request_cancel": True})
    assert asked.status is OrderStatus.CANCELLING
