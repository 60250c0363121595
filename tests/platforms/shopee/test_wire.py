"""Shopee client wire format and failure handling, against respx mocks."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from app.config import ClientTuning
from app.platforms.base import ClientConfig, MemoryTokenStore
from app.platforms.errors import (
    AuthError,
    MarketplaceError,
    PermanentError,
    RateLimitedError,
    ReauthRequiredError,
    TransientError,
)
from app.platforms.shopee.auth import push_signature, sign
from app.platforms.shopee.client import ShopeeClient
from app.platforms.shopee.mapping import error_for
from app.platforms.types import Credentials, StockUpdate

BASE = "https://partner.example.test"
PARTNER_ID = 1000123
PARTNER_KEY = "a1b2c3d4e5f6"
SHOP_ID = 600000
ACCESS = "6b6c6d6e6f707172"
REFRESH = "refresh-0001"


def tuning(**overrides: Any) -> ClientTuning:
    values: dict[str, Any] = {
        "calls_per_second": 10_000,
        "detail_concurrency": 4,
        "backoff_base_seconds": 0.001,
        "backoff_cap_seconds": 0.005,
        "max_attempts": 3,
        "timeout_seconds": 5,
    }
    values.update(overrides)
    return ClientTuning.model_construct(**values)


def credentials(refresh: str | None = REFRESH) -> Credentials:
    return Credentials(
        shop_id=str(SHOP_ID),
        api_key=str(PARTNER_ID),
        api_secret=PARTNER_KEY,
        access_token=ACCESS,
        refresh_token=refresh,
    )


def make_client(events: list[tuple[str, Any]] | None = None, **kwargs: Any) -> ShopeeClient:
    creds = kwargs.pop("creds", None) or credentials()
    sink = (lambda name, data: events.append((name, data))) if events is not None else None
    extra: dict[str, Any] = {"events": sink} if sink else {}
    return ShopeeClient(
        creds,
        ClientConfig(base_url=BASE, tuning=tuning(**kwargs)),
        token_store=MemoryTokenStore(creds),
        **extra,
    )


def query(request: httpx.Request) -> dict[str, str]:
    return {
        k: v[0]
        for k, v in parse_qs(urlsplit(str(request.url)).query, keep_blank_values=True).items()
    }


def envelope(response: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"request_id": "req-1", "error": "", "message": "", **top}
    if response is not None:
        body["response"] = response
    return body


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"request_id": "req-err", "error": code, "message": message}


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


# --- signing ---------------------------------------------------------------------------------


def test_shop_level_sign_matches_hmac_computed_by_hand() -> None:
    timestamp = 1_712_345_678
    base = f"{PARTNER_ID}/api/v2/order/get_order_list{timestamp}{ACCESS}{SHOP_ID}"
    by_hand = hmac.new(PARTNER_KEY.encode(), base.encode(), hashlib.sha256).hexdigest()
    assert (
        sign(PARTNER_KEY, PARTNER_ID, "/api/v2/order/get_order_list", timestamp, ACCESS, SHOP_ID)
        == by_hand
    )


def test_fixed_vectors_shop_level_and_public() -> None:
    # Checked independently with `openssl dgst -sha256 -hmac a1b2c3d4e5f6`.
    assert (
        sign("a1b2c3d4e5f6", 1000123, "/api/v2/order/get_order_list", 1700000000, ACCESS, 600000)
        == "68d0d5314a0826ea62e363166e5f88e3aa1f2d85e3f836f97e5b649646ed559e"
    )
    assert (
        sign("a1b2c3d4e5f6", 1000123, "/api/v2/auth/access_token/get", 1700000000)
        == "949c18fa13e2192f76105bbe9ecc18ae1e763ea08948360b69f34ccbca4c5a9f"
    )


def test_push_signature_is_hmac_of_url_bar_body() -> None:
    body = b'{"code":3,"shop_id":600000}'
    url = "https://omni.example/api/webhooks/marketplace"
    expected = hmac.new(PARTNER_KEY.encode(), url.encode() + b"|" + body, hashlib.sha256)
    assert push_signature(PARTNER_KEY, url, body) == expected.hexdigest()


async def test_shop_call_carries_common_params_and_valid_sign(mock: respx.MockRouter) -> None:
    route = mock.get("/api/v2/shop/get_shop_info").respond(
        json=envelope(shop_name="ร้านทดสอบ", region="TH")
    )
    client = make_client()
    info = await client.check_shop()
    assert info.name == "ร้านทดสอบ"
    assert info.shop_id == str(SHOP_ID)
    q = query(route.calls.last.request)
    assert q["partner_id"] == str(PARTNER_ID)
    assert q["shop_id"] == str(SHOP_ID)
    assert q["access_token"] == ACCESS
    timestamp = int(q["timestamp"])
    assert abs(timestamp - datetime.now(UTC).timestamp()) < 5
    base = f"{PARTNER_ID}/api/v2/shop/get_shop_info{timestamp}{ACCESS}{SHOP_ID}"
    assert q["sign"] == hmac.new(PARTNER_KEY.encode(), base.encode(), hashlib.sha256).hexdigest()
    assert q["sign"] == q["sign"].lower()


async def test_sign_covers_api_path_only_under_a_mount_prefix() -> None:
    with respx.mock(base_url="http://sandbox.test/shopee") as router:
        route = router.get("/api/v2/shop/get_shop_info").respond(json=envelope(shop_name="x"))
        creds = credentials()
        client = ShopeeClient(creds, ClientConfig("http://sandbox.test/shopee", tuning()))
        await client.check_shop()
    q = query(route.calls.last.request)
    assert route.calls.last.request.url.path == "/shopee/api/v2/shop/get_shop_info"
    expected = sign(
        PARTNER_KEY, PARTNER_ID, "/api/v2/shop/get_shop_info", int(q["timestamp"]), ACCESS, SHOP_ID
    )
    assert q["sign"] == expected


async def test_refresh_uses_public_sign_and_json_body(mock: respx.MockRouter) -> None:
    route = mock.post("/api/v2/auth/access_token/get").respond(
        json={
            "request_id": "r",
            "error": "",
            "message": "",
            "access_token": "new-access",
            "refresh_token": "new-refresh",
            "expire_in": 14400,
            "partner_id": PARTNER_ID,
            "shop_id": SHOP_ID,
        }
    )
    client = make_client()
    pair = await client.refresh_tokens(credentials())
    request = route.calls.last.request
    q = query(request)
    assert "access_token" not in q and "shop_id" not in q
    assert q["sign"] == sign(
        PARTNER_KEY, PARTNER_ID, "/api/v2/auth/access_token/get", int(q["timestamp"])
    )
    assert json.loads(request.content) == {
        "refresh_token": REFRESH,
        "partner_id": PARTNER_ID,
        "shop_id": SHOP_ID,
    }
    assert (pair.access_token, pair.refresh_token) == ("new-access", "new-refresh")
    assert pair.access_expires_at is not None
    expected = datetime.now(UTC) + timedelta(seconds=14400)
    assert abs((pair.access_expires_at - expected).total_seconds()) < 5


async def test_timestamp_and_sign_recomputed_on_each_attempt(
    mock: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks = iter(range(1_700_000_000, 1_700_000_100, 7))
    monkeypatch.setattr("app.platforms.shopee.auth.time.time", lambda: float(next(ticks)))
    route = mock.get("/api/v2/shop/get_shop_info").mock(
        side_effect=[httpx.Response(502), httpx.Response(200, json=envelope(shop_name="x"))]
    )
    await make_client().check_shop()
    first, second = (query(call.request) for call in route.calls)
    assert first["timestamp"] != second["timestamp"]
    for q in (first, second):
        assert q["sign"] == sign(
            PARTNER_KEY, PARTNER_ID, "/api/v2/shop/get_shop_info", int(q["timestamp"]), ACCESS,
            SHOP_ID,
        )  # fmt: skip


# --- failure classes and retries -------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "error_class", "attempts"),
    [
        (httpx.Response(500, json=error_body("error_server", "System error.")), TransientError, 3),
        (httpx.Response(503, text="<html>busy</html>"), TransientError, 3),
        (httpx.Response(200, text='{"truncated": '), TransientError, 3),
        (httpx.Response(200, json=error_body("error_network", "Inner")), TransientError, 3),
        (httpx.Response(429, json=error_body("error_rate_limit", "Too many")), RateLimitedError, 3),
        (httpx.Response(200, json=error_body("error_rate_limit", "Too many")), RateLimitedError, 3),
        (httpx.Response(200, json=error_body("error_limit", "daily limit")), RateLimitedError, 3),
        (
            httpx.Response(400, json=error_body("error_param", "Wrong parameters")),
            PermanentError,
            1,
        ),
        (httpx.Response(403, json=error_body("error_sign", "Wrong sign.")), PermanentError, 1),
        (
            httpx.Response(403, json=error_body("error_auth", "No permission to current api.")),
            PermanentError,
            1,
        ),
        (httpx.Response(200, json=error_body("shop_no_linked", "no link")), ReauthRequiredError, 1),
    ],
)
async def test_failure_classes_and_attempts(
    mock: respx.MockRouter, response: httpx.Response, error_class: type[Exception], attempts: int
) -> None:
    route = mock.get("/api/v2/shop/get_shop_info").mock(return_value=response)
    refresh = mock.post("/api/v2/auth/access_token/get").respond(json=envelope())
    with pytest.raises(error_class) as caught:
        await make_client().check_shop()
    assert type(caught.value) is error_class
    assert route.call_count == attempts
    assert refresh.call_count == 0


async def test_permanent_error_carries_shopees_message_and_request_id(
    mock: respx.MockRouter,
) -> None:
    mock.get("/api/v2/shop/get_shop_info").respond(
        400, json=error_body("common.error_param", "Invalid partner_id.")
    )
    with pytest.raises(PermanentError) as caught:
        await make_client().check_shop()
    assert caught.value.message == "Invalid partner_id."
    assert caught.value.request_id == "req-err"
    assert PARTNER_KEY not in str(caught.value) and ACCESS not in str(caught.value)


async def test_transient_then_success_is_retried(mock: respx.MockRouter) -> None:
    route = mock.get("/api/v2/shop/get_shop_info").mock(
        side_effect=[
            httpx.Response(500, json=error_body("error_server", "x")),
            httpx.Response(429, json=error_body("error_rate_limit", "y")),
            httpx.Response(200, json=envelope(shop_name="ok")),
        ]
    )
    assert (await make_client().check_shop()).name == "ok"
    assert route.call_count == 3


async def test_retry_after_is_honoured(mock: respx.MockRouter) -> None:
    events: list[tuple[str, Any]] = []
    route = mock.get("/api/v2/shop/get_shop_info").mock(
        side_effect=[
            httpx.Response(
                429, headers={"Retry-After": "0.2"}, json=error_body("error_rate_limit", "slow")
            ),
            httpx.Response(200, json=envelope(shop_name="ok")),
        ]
    )
    await make_client(events).check_shop()
    assert route.call_count == 2
    retries = [data for name, data in events if name == "retry"]
    assert len(retries) == 1
    assert retries[0]["reason"] == "rate_limited"
    assert retries[0]["delaySeconds"] >= 0.2


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("error_auth", "Invalid access_token."),
        ("invalid_acceess_token", "Invalid access_token, please have a check."),
        ("invalid_access_token", "Invalid access_token"),
        ("common.error_auth", "Invalid access_token."),
    ],
)
async def test_auth_error_refreshes_once_and_retries_with_new_token(
    mock: respx.MockRouter, code: str, message: str
) -> None:
    route = mock.get("/api/v2/shop/get_shop_info").mock(
        side_effect=[
            httpx.Response(403, json=error_body(code, message)),
            httpx.Response(200, json=envelope(shop_name="after refresh")),
        ]
    )
    refresh = mock.post("/api/v2/auth/access_token/get").respond(
        json={"error": "", "access_token": "fresh", "refresh_token": "r2", "expire_in": 14400}
    )
    client = make_client()
    assert (await client.check_shop()).name == "after refresh"
    assert route.call_count == 2 and refresh.call_count == 1
    assert query(route.calls[1].request)["access_token"] == "fresh"
    assert client.credentials.refresh_token == "r2"


async def test_auth_error_without_refresh_token_needs_reauthorization(
    mock: respx.MockRouter,
) -> None:
    route = mock.get("/api/v2/shop/get_shop_info").respond(
        403, json=error_body("error_auth", "Invalid access_token.")
    )
    client = make_client(creds=credentials(refresh=None))
    with pytest.raises(ReauthRequiredError) as caught:
        await client.check_shop()
    assert caught.value.message == "Invalid access_token."
    assert route.call_count == 1


@pytest.mark.parametrize("code", ["refresh_token_expired", "error_auth", "error_param"])
async def test_refused_refresh_needs_reauthorization(mock: respx.MockRouter, code: str) -> None:
    route = mock.get("/api/v2/shop/get_shop_info").respond(
        403, json=error_body("error_auth", "Invalid access_token.")
    )
    refresh = mock.post("/api/v2/auth/access_token/get").respond(
        403, json=error_body(code, "refresh refused")
    )
    with pytest.raises(ReauthRequiredError) as caught:
        await make_client().check_shop()
    assert caught.value.message == "refresh refused"
    assert route.call_count == 1 and refresh.call_count == 1


@pytest.mark.parametrize(
    ("code", "message", "error_class"),
    [
        ("error_rate_limit", "", RateLimitedError),
        ("error_limit", "", RateLimitedError),
        ("error_server", "", TransientError),
        ("error_network", "", TransientError),
        ("error_inner", "", TransientError),
        ("error_auth", "System error, please try again later.", TransientError),
        ("error_auth", "Invalid access_token.", AuthError),
        ("error_auth", "Total stock must be more than reserved stock.", PermanentError),
        ("error_auth", "Invalid partner_id or shopid.", PermanentError),
        ("invalid_acceess_token", "", AuthError),
        ("error_param", "Invalid access_token", AuthError),
        ("refresh_token_expired", "", ReauthRequiredError),
        ("error_shop_refresh_token", "", ReauthRequiredError),
        ("shop_access_expired", "", ReauthRequiredError),
        ("shop_banned", "", ReauthRequiredError),
        ("error_param", "Timestamp is expired.", PermanentError),
        ("order.order_list_invalid_time", "diff in 15days", PermanentError),
        ("error_permission", "", PermanentError),
        ("something_new", "?", PermanentError),
    ],
)
def test_error_table(code: str, message: str, error_class: type[MarketplaceError]) -> None:
    error = error_for(code, message)
    assert type(error) is error_class
    assert error.code == code
    assert error.message == (message or code)


# --- orders ----------------------------------------------------------------------------------


def fake_order(order_sn: str, update_time: int, **overrides: Any) -> dict[str, Any]:
    order: dict[str, Any] = {
        "order_sn": order_sn,
        "region": "TH",
        "currency": "THB",
        "cod": False,
        "order_status": "READY_TO_SHIP",
        "create_time": update_time - 600,
        "update_time": update_time,
        "pay_time": update_time - 300,
        "total_amount": 1234.56,
        "estimated_shipping_fee": 45.5,
        "payment_method": "ShopeePay",
        "recipient_address": {"name": "สมชาย ใจดี", "phone": "66812345678", "zipcode": "10500"},
        "item_list": [
            {
                "item_id": 1,
                "item_name": "เสื้อ",
                "model_id": 11,
                "model_sku": "SKU-1",
                "model_name": "ขาว/M",
                "model_quantity_purchased": 2,
                "model_original_price": 600.0,
                "model_discounted_price": 594.53,
            }
        ],
    }
    order.update(overrides)
    return order


class FakeShopee:
    """A respx side effect for order list/detail: serves `orders` by update_time."""

    def __init__(self, orders: list[dict[str, Any]], bad_batch_sn: str | None = None) -> None:
        self.orders = {o["order_sn"]: o for o in orders}
        self.list_queries: list[dict[str, str]] = []
        self.detail_batches: list[list[str]] = []
        self.bad_batch_sn = bad_batch_sn

    def order_list(self, request: httpx.Request) -> httpx.Response:
        q = query(request)
        self.list_queries.append(q)
        lo, hi = int(q["time_from"]), int(q["time_to"])
        matching = sorted(sn for sn, o in self.orders.items() if lo <= o["update_time"] <= hi)
        offset = int(q.get("cursor") or 0)
        size = int(q["page_size"])
        page = matching[offset : offset + size]
        more = offset + size < len(matching)
        return httpx.Response(
            200,
            json=envelope(
                {
                    "more": more,
                    "next_cursor": str(offset + size) if more else "",
                    "order_list": [{"order_sn": sn} for sn in page],
                }
            ),
        )

    def order_detail(self, request: httpx.Request) -> httpx.Response:
        sns = query(request)["order_sn_list"].split(",")
        self.detail_batches.append(sns)
        if self.bad_batch_sn in sns:
            return httpx.Response(400, json=error_body("error_param", "bad order_sn in list"))
        found = [self.orders[sn] for sn in sns if sn in self.orders]
        return httpx.Response(200, json=envelope({"order_list": found}))


async def test_orders_windows_paging_batches_and_resume_points(mock: respx.MockRouter) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=16)
    base = int(start.timestamp())
    orders = [fake_order(f"SN{i:04d}", base + 1000 + i) for i in range(130)]
    orders.append(fake_order("SN_LATE", int(end.timestamp()) - 10))
    fake = FakeShopee(orders)
    mock.get("/api/v2/order/get_order_list").mock(side_effect=fake.order_list)
    mock.get("/api/v2/order/get_order_detail").mock(side_effect=fake.order_detail)

    pages = [page async for page in make_client().iter_orders(start, end)]

    ids = [o.external_order_id for page in pages for o in page.orders]
    assert sorted(ids) == sorted(o["order_sn"] for o in orders)
    assert not [f for page in pages for f in page.failures]
    # Window 1 = 15 days (2 list pages), window 2 = 1 day (1 list page).
    assert [p.resume_from for p in pages] == [start, start + timedelta(days=15), end]
    assert [len(p.orders) for p in pages] == [100, 30, 1]
    for q in fake.list_queries:
        assert q["time_range_field"] == "update_time"
        assert q["page_size"] == "100"
        assert "order_status" not in q
        assert int(q["time_to"]) - int(q["time_from"]) <= 15 * 86400
    first, second, third = fake.list_queries
    assert (first["time_from"], first["time_to"]) == (second["time_from"], second["time_to"])
    assert second["cursor"] == "100" and first["cursor"] == ""
    assert int(third["time_from"]) == int(first["time_to"]) + 1
    assert int(third["time_to"]) == int(end.timestamp()) - 1
    assert sorted(len(b) for b in fake.detail_batches) == [1, 30, 50, 50]


async def test_detail_request_asks_for_buyer_address_items_amounts_payment(
    mock: respx.MockRouter,
) -> None:
    route = mock.get("/api/v2/order/get_order_detail").respond(
        json=envelope({"order_list": [fake_order("SN1", 1_767_225_600)]})
    )
    [order] = await make_client().get_orders(["SN1"])
    fields = set(query(route.calls.last.request)["response_optional_fields"].split(","))
    assert {
        "buyer_username",
        "recipient_address",
        "item_list",
        "total_amount",
        "estimated_shipping_fee",
        "actual_shipping_fee",
        "pay_time",
        "payment_method",
    } <= fields
    assert order.total == Decimal("1234.56")
    assert order.shipping_fee == Decimal("45.5")
    assert order.items[0].unit_price == Decimal("600.0")
    assert order.items[0].discount == Decimal("10.94")
    assert order.subtotal == Decimal("1189.06")
    assert order.discount == Decimal("0")
    assert order.paid_at == datetime.fromtimestamp(1_767_225_300, UTC)
    assert order.buyer_name == "สมชาย ใจดี"


async def test_mapping_failures_and_refused_orders_do_not_abort_the_page(
    mock: respx.MockRouter,
) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    base = int(start.timestamp())
    orders = [fake_order(f"SN{i:02d}", base + 100 + i) for i in range(60)]
    orders[3]["total_amount"] = "not money"
    orders[7]["item_list"] = "garbage"
    fake = FakeShopee(orders, bad_batch_sn="SN55")
    mock.get("/api/v2/order/get_order_list").mock(side_effect=fake.order_list)
    mock.get("/api/v2/order/get_order_detail").mock(side_effect=fake.order_detail)
    pages = [p async for p in make_client().iter_orders(start, start + timedelta(days=1))]
    failures = {f.external_order_id: f.message for p in pages for f in p.failures}
    got = {o.external_order_id for p in pages for o in p.orders}
    assert set(failures) == {"SN03", "SN07", "SN55"}
    assert "total_amount" in failures["SN03"]
    assert failures["SN55"] == "bad order_sn in list"
    assert got == {o["order_sn"] for o in orders} - set(failures)


# --- stock -----------------------------------------------------------------------------------


async def test_update_stock_one_item_per_call_and_failures_per_sku(mock: respx.MockRouter) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        models = [entry["model_id"] for entry in body["stock_list"]]
        return httpx.Response(
            200,
            json=envelope(
                {
                    "success_list": [{"model_id": m, "stock": 5} for m in models if m != 22],
                    "failure_list": [
                        {"model_id": 22, "failed_reason": "Stock should be larger than reserved"}
                    ]
                    if 22 in models
                    else [],
                }
            ),
        )

    route = mock.post("/api/v2/product/update_stock").mock(side_effect=answer)
    results = await make_client().update_stock(
        [
            StockUpdate("SKU-A", 5, external_product_id="1", external_variation_id="21"),
            StockUpdate("SKU-B", 5, external_product_id="1", external_variation_id="22"),
            StockUpdate("SKU-C", 7, external_product_id="2", external_variation_id="0"),
            StockUpdate("SKU-D", -1, external_product_id="2", external_variation_id="0"),
        ]
    )
    assert [(r.sku, r.ok) for r in results] == [
        ("SKU-A", True),
        ("SKU-B", False),
        ("SKU-C", True),
        ("SKU-D", False),
    ]
    assert results[1].message == "Stock should be larger than reserved"
    bodies = [json.loads(call.request.content) for call in route.calls]
    assert bodies == [
        {
            "item_id": 1,
            "stock_list": [
                {"model_id": 21, "seller_stock": [{"stock": 5}]},
                {"model_id": 22, "seller_stock": [{"stock": 5}]},
            ],
        },
        {"item_id": 2, "stock_list": [{"model_id": 0, "seller_stock": [{"stock": 7}]}]},
    ]


async def test_update_stock_call_failure_is_reported_per_sku(mock: respx.MockRouter) -> None:
    mock.post("/api/v2/product/update_stock").respond(
        json=error_body("product.error_item_not_found", "Item_id is not found.")
    )
    results = await make_client().update_stock(
        [StockUpdate("SKU-X", 1, external_product_id="9", external_variation_id="0")]
    )
    assert [(r.sku, r.ok, r.message) for r in results] == [
        ("SKU-X", False, "Item_id is not found.")
    ]


async def test_non_numeric_partner_id_is_a_permanent_error(mock: respx.MockRouter) -> None:
    creds = credentials()
    creds.api_key = "not-a-number"
    with pytest.raises(PermanentError, match="partner id"):
        await make_client(creds=creds).check_shop()
