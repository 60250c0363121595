"""The Lazada client's wire format and failure handling, against respx."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl
from xml.etree import ElementTree

import httpx
import pytest
import respx

from app.config import ClientTuning
from app.platforms.base import ClientConfig, MemoryTokenStore
from app.platforms.errors import (
    MarketplaceError,
    PermanentError,
    RateLimitedError,
    ReauthRequiredError,
    TransientError,
)
from app.platforms.lazada.auth import sign
from app.platforms.lazada.client import LazadaClient
from app.platforms.lazada.mapping import error_for
from app.platforms.types import Credentials, OrderStatus, StockUpdate

API = "https://api.lazada.co.th/rest"
AUTH = "https://auth.lazada.com/rest"
SECRET = "app-secret"
MAX_ATTEMPTS = 4


def make_client(
    refresh_token: str | None = "refresh-1", events: list[tuple[str, Any]] | None = None
) -> tuple[LazadaClient, MemoryTokenStore]:
    tuning = ClientTuning.model_construct(
        calls_per_second=10_000,
        detail_concurrency=4,
        backoff_base_seconds=0.001,
        backoff_cap_seconds=0.01,
        max_attempts=MAX_ATTEMPTS,
        timeout_seconds=5,
    )
    creds = Credentials(
        shop_id="100200300",
        api_key="123456",
        api_secret=SECRET,
        access_token="access-1",
        refresh_token=refresh_token,
    )
    store = MemoryTokenStore(creds)
    sink = (lambda name, data: events.append((name, dict(data)))) if events is not None else None
    client = LazadaClient(
        creds,
        ClientConfig(base_url=API, auth_url=AUTH, tuning=tuning),
        token_store=store,
        **({"events": sink} if sink else {}),
    )
    return client, store


def ok(data: Any = None, **extra: Any) -> httpx.Response:
    body: dict[str, Any] = {"code": "0", "request_id": "req-1", **extra}
    if data is not None:
        body["data"] = data
    return httpx.Response(200, json=body)


def lz_error(code: str, message: str, kind: str = "ISV", status: int = 200) -> httpx.Response:
    return httpx.Response(
        status, json={"code": code, "type": kind, "message": message, "request_id": "req-e"}
    )


def assert_signed(request: httpx.Request, api_path: str, token: str | None = "access-1") -> None:
    query = dict(request.url.params)
    body = dict(parse_qsl(request.content.decode())) if request.method == "POST" else {}
    assert query.get("access_token") == token
    given = query.pop("sign")
    assert given == sign(api_path, {**query, **body}, SECRET)


def order(order_id: int, updated: str, statuses: list[str] | None = None) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "order_number": order_id,
        "created_at": "2024-03-01 10:00:00 +0700",
        "updated_at": updated,
        "statuses": statuses or ["pending"],
        "price": "1,299.50",
        "voucher": 20.5,
        "shipping_fee": 38,
        "payment_method": "COD",
        "customer_first_name": "สมชาย",
        "customer_last_name": "ใจดี",
        "address_shipping": {"first_name": "สมชาย", "phone": "66812345678", "address1": "1/2"},
    }


def unit(order_id: int, line: int, sku: str, price: float, status: str = "pending") -> Mapping:
    return {
        "order_item_id": order_id * 100 + line,
        "order_id": order_id,
        "name": f"Product {sku}",
        "sku": sku,
        "variation": "ดำ/M",
        "item_price": price,
        "paid_price": price,
        "voucher_amount": 0,
        "currency": "THB",
        "status": status,
    }


# --- wire format -----------------------------------------------------------------------


@respx.mock
async def test_iter_orders_sends_lazadas_parameters_and_groups_units() -> None:
    orders = respx.get(f"{API}/orders/get").mock(
        return_value=ok(
            {
                "count": 2,
                "countTotal": 2,
                "orders": [
                    order(11, "2024-03-01 10:00:00 +0700"),
                    order(12, "2024-03-01 11:00:00 +0700", ["pending", "canceled"]),
                ],
            }
        )
    )
    items = respx.get(f"{API}/orders/items/get").mock(
        return_value=ok(
            [
                {"order_id": 11, "order_items": [unit(11, 1, "A", 649.75)] * 2},
                {
                    "order_id": 12,
                    "order_items": [
                        unit(12, 1, "A", 649.75, "canceled"),
                        unit(12, 2, "B", 1299.5),
                    ],
                },
            ]
        )
    )
    client, _ = make_client()
    start = datetime(2024, 3, 1, tzinfo=UTC)
    end = datetime(2024, 3, 2, 0, 0, 0, 500_000, tzinfo=UTC)
    pages = [p async for p in client.iter_orders(start, end)]

    assert orders.call_count == 1
    request = orders.calls.last.request
    assert_signed(request, "/orders/get")
    params = dict(request.url.params)
    assert params["update_after"] == "2024-03-01T00:00:00+00:00"
    assert params["update_before"] == "2024-03-02T00:00:01+00:00"  # rounded up, never down
    assert (params["status"], params["sort_by"], params["sort_direction"]) == (
        "all",
        "updated_at",
        "ASC",
    )
    assert (params["offset"], params["limit"]) == ("0", "100")
    assert dict(items.calls.last.request.url.params)["order_ids"] == "[11,12]"

    assert len(pages) == 1 and pages[0].resume_from == end and not pages[0].failures
    first, second = pages[0].orders
    assert [(i.sku, i.quantity, i.unit_price) for i in first.items] == [("A", 2, Decimal("649.75"))]
    assert first.total == Decimal("1299.50") - Decimal("20.5") + Decimal("38")
    assert first.is_cod and first.buyer_name == "สมชาย ใจดี"
    assert first.updated_at == datetime(2024, 3, 1, 3, 0, tzinfo=UTC)
    assert second.status is OrderStatus.PENDING  # the canceled unit does not decide
    assert sorted(i.sku or "" for i in second.items) == ["A", "B"]


@respx.mock
async def test_item_batches_hold_at_most_the_batch_size() -> None:
    rows = [order(1000 + n, "2024-03-01 10:00:00 +0700") for n in range(120)]

    def orders_page(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        page = rows[offset : offset + 100]
        return ok({"count": len(page), "countTotal": len(rows), "orders": page})

    def items_batch(request: httpx.Request) -> httpx.Response:
        ids = request.url.params["order_ids"].strip("[]").split(",")
        return ok([{"order_id": int(i), "order_items": [unit(int(i), 1, "A", 10)]} for i in ids])

    respx.get(f"{API}/orders/get").mock(side_effect=orders_page)
    items = respx.get(f"{API}/orders/items/get").mock(side_effect=items_batch)
    client, _ = make_client()
    pages = [
        p
        async for p in client.iter_orders(
            datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC)
        )
    ]
    sizes = [len(c.request.url.params["order_ids"].split(",")) for c in items.calls]
    assert max(sizes) <= LazadaClient.items_batch_size and sum(sizes) == 120
    ids = [int(o.external_order_id) for p in pages for o in p.orders]
    assert ids == [1000 + n for n in range(120)]  # in order, no repeats from the page overlap


@respx.mock
async def test_refresh_goes_to_the_auth_host_without_an_access_token() -> None:
    route = respx.post(f"{AUTH}/auth/token/refresh").mock(
        return_value=httpx.Response(
            200,
            json={
                "access_token": "access-2",
                "refresh_token": "refresh-2",
                "expires_in": 2592000,
                "refresh_expires_in": 15552000,
                "code": "0",
                "request_id": "r",
            },
        )
    )
    client, store = make_client()
    pair = await client.refresh_tokens(store.credentials)
    request = route.calls.last.request
    assert_signed(request, "/auth/token/refresh", token=None)
    assert dict(parse_qsl(request.content.decode())) == {"refresh_token": "refresh-1"}
    assert (pair.access_token, pair.refresh_token) == ("access-2", "refresh-2")
    assert pair.access_expires_at is not None
    assert pair.access_expires_at - datetime.now(UTC) > timedelta(days=29)


SELLABLE_UPDATE = "/product/stock/sellable/update"


@respx.mock
async def test_update_stock_sets_the_sellable_quantity_in_batches_of_twenty() -> None:
    payloads: list[ElementTree.Element] = []

    def update(request: httpx.Request) -> httpx.Response:
        assert_signed(request, SELLABLE_UPDATE)
        payloads.append(
            ElementTree.fromstring(dict(parse_qsl(request.content.decode()))["payload"])
        )
        return ok()

    respx.post(f"{API}{SELLABLE_UPDATE}").mock(side_effect=update)
    client, _ = make_client()
    updates = [
        StockUpdate(sku=f"SKU-{n}", quantity=n, external_product_id="77", external_variation_id="9")
        for n in range(45)
    ]
    results = await client.update_stock(updates)
    assert [len(p.findall("./Product/Skus/Sku")) for p in payloads] == [20, 20, 5]
    first = payloads[0].find("./Product/Skus/Sku")
    assert first is not None
    # The sellable quantity, not the total: the total also counts units of open orders.
    assert first.find("Quantity") is None
    assert [first.findtext(t) for t in ("ItemId", "SkuId", "SellerSku", "SellableQuantity")] == [
        "77",
        "9",
        "SKU-0",
        "0",
    ]
    assert all(r.ok for r in results) and [r.sku for r in results] == [u.sku for u in updates]


@respx.mock
async def test_update_stock_resends_a_batch_without_the_skus_lazada_names() -> None:
    calls: list[list[str]] = []

    def update(request: httpx.Request) -> httpx.Response:
        root = ElementTree.fromstring(dict(parse_qsl(request.content.decode()))["payload"])
        skus = [s.findtext("SellerSku") or "" for s in root.iter("Sku")]
        calls.append(skus)
        if "BAD" in skus:
            body = {
                "code": "500",
                "type": "ISV",
                "message": "Update price quantity failed",
                "detail": [
                    {"field": "SellerSku", "message": "SELLER_SKU_NOT_FOUND", "seller_sku": "BAD"}
                ],
                "request_id": "x",
            }
            return httpx.Response(200, json=body)
        return ok()

    respx.post(f"{API}{SELLABLE_UPDATE}").mock(side_effect=update)
    client, _ = make_client()
    results = await client.update_stock(
        [StockUpdate("A", 1), StockUpdate("BAD", 2), StockUpdate("C", 3)]
    )
    assert calls == [["A", "BAD", "C"], ["A", "C"]]
    assert [(r.sku, r.ok) for r in results] == [("A", True), ("BAD", False), ("C", True)]
    assert results[1].message == "SELLER_SKU_NOT_FOUND"


@respx.mock
async def test_get_orders_reads_each_order_and_skips_unknown_ones() -> None:
    def one(request: httpx.Request) -> httpx.Response:
        order_id = int(request.url.params["order_id"])
        if order_id == 99:
            return lz_error("E016", "Invalid Order ID")
        return ok(order(order_id, "2024-03-01 10:00:00 +0700"))

    respx.get(f"{API}/order/get").mock(side_effect=one)
    items = respx.get(f"{API}/orders/items/get").mock(
        return_value=ok([{"order_id": 5, "order_items": [unit(5, 1, "A", 1)]}])
    )
    client, _ = make_client()
    found = await client.get_orders(["5", "99"])
    assert [o.external_order_id for o in found] == ["5"]
    assert dict(items.calls.last.request.url.params)["order_ids"] == "[5]"


# --- failure classes and retries -----------------------------------------------------------

RETRIED = [
    (httpx.Response(429, headers={"Retry-After": "0"}, text="slow down"), RateLimitedError),
    (lz_error("ApiCallLimit", "The request has exceeded the limit", "ISP"), RateLimitedError),
    (lz_error("AppCallLimit", "App call limit", "ISV"), RateLimitedError),
    (lz_error("ServiceUnavailable", "down", "SYSTEM", status=503), TransientError),
    (httpx.Response(502, text="<html>bad gateway</html>"), TransientError),
    (httpx.Response(200, text='{"code": "0", "data": '), TransientError),
    (lz_error("InternalError", "oops", "ISP"), TransientError),
]
NOT_RETRIED = [
    (
        lz_error(
            "IncompleteSignature", "The request signature does not conform to platform standards"
        ),
        PermanentError,
    ),
    (lz_error("InvalidParameter", "offset must be between 0 and 5000"), PermanentError),
    (httpx.Response(404, text="<html>not found</html>"), PermanentError),
]


@pytest.mark.parametrize(("response", "error_class"), RETRIED)
@respx.mock
async def test_transient_and_rate_limited_answers_are_retried(
    response: httpx.Response, error_class: type[MarketplaceError]
) -> None:
    route = respx.get(f"{API}/seller/get").mock(return_value=response)
    client, _ = make_client()
    with pytest.raises(error_class):
        await client.check_shop()
    assert route.call_count == MAX_ATTEMPTS


@pytest.mark.parametrize(("response", "error_class"), NOT_RETRIED)
@respx.mock
async def test_permanent_answers_are_not_retried(
    response: httpx.Response, error_class: type[MarketplaceError]
) -> None:
    route = respx.get(f"{API}/seller/get").mock(return_value=response)
    client, _ = make_client()
    with pytest.raises(error_class) as caught:
        await client.check_shop()
    assert route.call_count == 1
    assert not isinstance(caught.value, TransientError | RateLimitedError)
    if response.headers.get("content-type") == "application/json":
        assert caught.value.message == json.loads(response.content)["message"]


@respx.mock
async def test_a_transient_failure_then_success_returns_the_answer() -> None:
    route = respx.get(f"{API}/seller/get").mock(
        side_effect=[
            lz_error("ServiceUnavailable", "down", "SYSTEM", status=503),
            lz_error("ApiCallLimit", "limit", "ISP"),
            ok({"name": "ร้านทดสอบ", "seller_id": 100200300}),
        ]
    )
    client, _ = make_client()
    shop = await client.check_shop()
    assert (shop.name, shop.shop_id, route.call_count) == ("ร้านทดสอบ", "100200300", 3)


@respx.mock
async def test_retry_after_and_lazadas_ban_seconds_are_honoured() -> None:
    respx.get(f"{API}/seller/get").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "0.05"}),
            lz_error(
                "ApiCallLimit", "The request has exceeded the limit: ban will last 0.04 s", "ISP"
            ),
            ok({"name": "x"}),
        ]
    )
    events: list[tuple[str, Any]] = []
    client, _ = make_client(events=events)
    await client.check_shop()
    delays = [data["delaySeconds"] for name, data in events if name == "retry"]
    assert len(delays) == 2 and delays[0] >= 0.05 and delays[1] >= 0.04
    error = error_for({"code": "ApiCallLimit", "message": "ban will last 1 seconds"}, 200)
    assert isinstance(error, RateLimitedError) and error.retry_after == 1.0


@respx.mock
async def test_an_expired_token_is_refreshed_once_and_the_call_repeated() -> None:
    seller = respx.get(f"{API}/seller/get").mock(
        side_effect=[
            lz_error("IllegalAccessToken", "The specified access token is invalid or expired"),
            ok({"name": "shop"}),
        ]
    )
    refresh = respx.post(f"{AUTH}/auth/token/refresh").mock(
        return_value=httpx.Response(
            200,
            json={
                "code": "0",
                "access_token": "access-2",
                "refresh_token": "refresh-2",
                "expires_in": 3600,
            },
        )
    )
    client, store = make_client()
    assert (await client.check_shop()).name == "shop"
    assert (seller.call_count, refresh.call_count, store.refresh_count) == (2, 1, 1)
    assert dict(seller.calls.last.request.url.params)["access_token"] == "access-2"
    assert store.credentials.refresh_token == "refresh-2"


@respx.mock
async def test_a_refused_refresh_needs_reauthorization_and_is_not_retried() -> None:
    respx.get(f"{API}/seller/get").mock(
        return_value=lz_error(
            "IllegalAccessToken", "The specified access token is invalid or expired"
        )
    )
    refresh = respx.post(f"{AUTH}/auth/token/refresh").mock(
        return_value=lz_error(
            "IllegalRefreshToken", "The specified refresh token is invalid or expired"
        )
    )
    client, _ = make_client()
    with pytest.raises(ReauthRequiredError) as caught:
        await client.check_shop()
    assert refresh.call_count == 1
    assert "refresh token is invalid" in caught.value.message


@respx.mock
async def test_without_a_refresh_token_an_auth_error_needs_reauthorization() -> None:
    seller = respx.get(f"{API}/seller/get").mock(
        return_value=lz_error(
            "IllegalAccessToken", "The specified access token is invalid or expired"
        )
    )
    client, _ = make_client(refresh_token=None)
    with pytest.raises(ReauthRequiredError):
        await client.check_shop()
    assert seller.call_count == 1


@respx.mock
async def test_a_refused_item_batch_is_asked_order_by_order() -> None:
    respx.get(f"{API}/orders/get").mock(
        return_value=ok(
            {
                "countTotal": 3,
                "orders": [order(n, "2024-03-01 10:00:00 +0700") for n in (11, 12, 13)],
            }
        )
    )

    def items_batch(request: httpx.Request) -> httpx.Response:
        ids = request.url.params["order_ids"].strip("[]").split(",")
        if "13" in ids:
            return lz_error("E0XX", "Order 13 is not yours")
        return ok([{"order_id": int(i), "order_items": [unit(int(i), 1, "A", 5)]} for i in ids])

    items = respx.get(f"{API}/orders/items/get").mock(side_effect=items_batch)
    client, _ = make_client()
    pages = [
        p
        async for p in client.iter_orders(
            datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC)
        )
    ]
    assert items.call_count == 4  # the batch, then each order alone
    assert [o.external_order_id for o in pages[0].orders] == ["11", "12"]
    assert [(f.external_order_id, f.message) for f in pages[0].failures] == [
        ("13", "Items not readable: Order 13 is not yours")
    ]
