"""The Shopee client against the Shopee sandbox, in-process over ASGI."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from app.config import ClientTuning
from app.platforms.base import ClientConfig, MemoryTokenStore, OrderPage
from app.platforms.errors import PermanentError, ReauthRequiredError, TransientError
from app.platforms.shopee.auth import ShopeeAuth
from app.platforms.shopee.client import ShopeeClient
from app.platforms.shopee.mapping import ORDER_STATUSES
from app.platforms.types import Credentials, OrderStatus, StockUpdate
from app.sandbox.seed import SeedOrder
from app.sandbox.shopee import ShopeeSandbox, ShopeeShop, create_app, order_sn, seed_demo

BASE = "http://shopee.sandbox"


def tuning(**overrides: Any) -> ClientTuning:
    values: dict[str, Any] = {
        "calls_per_second": 10_000,
        "detail_concurrency": 4,
        "backoff_base_seconds": 0.001,
        "backoff_cap_seconds": 0.01,
        "max_attempts": 4,
        "timeout_seconds": 10,
    }
    values.update(overrides)
    return ClientTuning.model_construct(**values)


@dataclass
class Env:
    state: ShopeeSandbox
    http: httpx.AsyncClient

    def add_shop(self, **kwargs: Any) -> tuple[ShopeeShop, Credentials]:
        creds = self.state.add_shop(**kwargs)
        shop = self.state.shops[int(creds["shopId"])]
        return shop, credentials_of(creds)

    def client(
        self, creds: Credentials, store: MemoryTokenStore | None = None, **tuning_overrides: Any
    ) -> ShopeeClient:
        return ShopeeClient(
            creds,
            ClientConfig(base_url=BASE, tuning=tuning(**tuning_overrides)),
            token_store=store or MemoryTokenStore(creds),
            http_client=self.http,
        )


def credentials_of(creds: dict[str, str]) -> Credentials:
    return Credentials(
        shop_id=creds["shopId"],
        api_key=creds["apiKey"],
        api_secret=creds["apiSecret"],
        access_token=creds["accessToken"],
        refresh_token=creds["refreshToken"],
    )


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    state = ShopeeSandbox()
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        yield Env(state, http)


def seed_orders(shop: ShopeeShop) -> dict[str, SeedOrder]:
    seeded = shop.seeded
    orders = seeded.updated_between(seeded.start, seeded.end + timedelta(days=1))
    return {order_sn(o): o for o in orders}


async def collect(client: ShopeeClient, start: datetime, end: datetime) -> list[OrderPage]:
    return [page async for page in client.iter_orders(start, end)]


def all_orders(pages: list[OrderPage]) -> dict[str, Any]:
    orders = {o.external_order_id: o for page in pages for o in page.orders}
    assert len(orders) == sum(len(page.orders) for page in pages), "duplicate orders"
    return orders


def whole_range(shop: ShopeeShop) -> tuple[datetime, datetime]:
    return shop.seeded.start - timedelta(hours=1), shop.seeded.end + timedelta(hours=1)


# --- shop check and signing ------------------------------------------------------------------


async def test_check_shop_returns_the_shop_name(env: Env) -> None:
    shop, creds = env.add_shop(name="ร้านของฉัน")
    info = await env.client(creds).check_shop()
    assert (info.shop_id, info.name) == (str(shop.shop_id), "ร้านของฉัน")


async def test_wrong_partner_key_is_refused_with_shopees_reason(env: Env) -> None:
    _, creds = env.add_shop()
    creds.api_secret = "0" * 64
    with pytest.raises(PermanentError) as caught:
        await env.client(creds).check_shop()
    assert (caught.value.code, caught.value.message) == ("error_sign", "Wrong sign.")


async def test_unknown_shop_is_refused_without_a_refresh(env: Env) -> None:
    _, creds = env.add_shop()
    creds.shop_id = "123"
    with pytest.raises(PermanentError) as caught:
        await env.client(creds).check_shop()
    assert caught.value.message == "Invalid partner_id or shopid."
    assert env.state.tokens.refreshes == 0


async def test_wrong_token_without_refresh_token_keeps_shopees_reason(env: Env) -> None:
    _, creds = env.add_shop()
    creds.access_token, creds.refresh_token = "typo", None
    with pytest.raises(ReauthRequiredError) as caught:
        await env.client(creds).check_shop()
    assert caught.value.message == "Invalid access_token."


async def raw_call(
    env: Env, creds: Credentials, path: str, params: dict[str, Any], clock: float | None = None
) -> dict[str, Any]:
    auth = ShopeeAuth(
        partner_id=int(creds.api_key),
        partner_key=creds.api_secret,
        api_path=path,
        access_token=creds.access_token,
        shop_id=int(creds.shop_id),
        clock=(lambda: clock) if clock is not None else None,
    )
    response = await env.http.get(path, params=params, auth=auth)
    body: dict[str, Any] = response.json()
    return body


async def test_sandbox_enforces_timestamp_token_window_and_page_limits(env: Env) -> None:
    _shop, creds = env.add_shop(order_count=10, days=5)
    now = int(time.time())
    ok = {"time_range_field": "update_time", "time_from": now - 86400, "time_to": now}
    path = "/api/v2/order/get_order_list"
    assert (await raw_call(env, creds, path, {**ok, "page_size": 100}))["error"] == ""
    expired = await raw_call(env, creds, path, {**ok, "page_size": 10}, clock=now - 301)
    assert (expired["error"], expired["message"]) == ("error_param", "Timestamp is expired.")
    too_long = {**ok, "time_from": now - 15 * 86400 - 1, "page_size": 10}
    assert (await raw_call(env, creds, path, too_long))["error"] == "order.order_list_invalid_time"
    for size in (0, 101):
        answer = await raw_call(env, creds, path, {**ok, "page_size": size})
        assert answer["error"] == "error_param"
    detail = "/api/v2/order/get_order_detail"
    too_many = ",".join(f"2601010000000{i}" for i in range(51))
    assert (await raw_call(env, creds, detail, {"order_sn_list": too_many}))["error"] == (
        "error_param"
    )
    creds.access_token = "unknown"
    answer = await raw_call(env, creds, path, {**ok, "page_size": 10})
    assert (answer["error"], answer["message"]) == ("error_auth", "Invalid access_token.")


async def test_cursor_belongs_to_its_query(env: Env) -> None:
    _shop, creds = env.add_shop(order_count=300, days=5)
    now = int(time.time())
    params = {"time_range_field": "update_time", "time_from": now - 6 * 86400, "time_to": now}
    path = "/api/v2/order/get_order_list"
    first = await raw_call(env, creds, path, {**params, "page_size": 100})
    cursor = first["response"]["next_cursor"]
    assert first["response"]["more"] is True and cursor
    moved = {**params, "time_to": now - 1, "page_size": 100, "cursor": cursor}
    assert (await raw_call(env, creds, path, moved))["error"] == "error_param"


# --- orders: paging edges --------------------------------------------------------------------


async def test_empty_shop(env: Env) -> None:
    shop, creds = env.add_shop(order_count=0, days=30)
    start, end = whole_range(shop)
    pages = await collect(env.client(creds), start, end)
    assert all_orders(pages) == {}
    assert pages[-1].resume_from == end
    assert len(pages) == 3  # one empty page per 15-day window (30 days + 2 hours)


async def test_exactly_one_hundred_orders_is_one_list_page(env: Env) -> None:
    shop, creds = env.add_shop(order_count=100, days=10)
    start, end = whole_range(shop)
    pages = await collect(env.client(creds), start, end)
    assert set(all_orders(pages)) == set(seed_orders(shop))
    assert env.state.calls["/api/v2/order/get_order_list"] == 1
    assert env.state.calls["/api/v2/order/get_order_detail"] == 2
    assert [page.resume_from for page in pages] == [end]


@pytest.mark.parametrize(("days", "windows"), [(16, 2), (40, 3)])
async def test_ranges_longer_than_15_days_use_several_windows(
    env: Env, days: int, windows: int
) -> None:
    shop, creds = env.add_shop(order_count=700, days=days)
    start, end = shop.seeded.start, shop.seeded.end + timedelta(seconds=1)
    pages = await collect(env.client(creds), start, end)
    assert set(all_orders(pages)) == set(seed_orders(shop))
    window_ends = sorted({p.resume_from for p in pages} - {start})
    assert len(window_ends) == windows
    assert window_ends[-1] == end


async def test_a_range_inside_the_shop_returns_exactly_its_orders(env: Env) -> None:
    shop, creds = env.add_shop(order_count=2000, days=40)
    start = shop.seeded.start + timedelta(days=10, seconds=0.5)
    end = start + timedelta(days=17, hours=3)
    pages = await collect(env.client(creds), start, end)
    expected = {order_sn(o) for o in shop.seeded.updated_between(start, end)}
    # Shopee counts whole seconds: an order at start's second but before `start` is excluded.
    assert set(all_orders(pages)) == expected
    assert expected


async def test_ten_thousand_orders_fetched_completely_and_correctly(env: Env) -> None:
    shop, creds = env.add_shop(seed="big", order_count=10_000, days=60)
    start, end = whole_range(shop)
    began = time.perf_counter()
    pages = await collect(env.client(creds), start, end)
    elapsed = time.perf_counter() - began
    got = all_orders(pages)
    expected = seed_orders(shop)
    assert set(got) == set(expected)
    assert not [f for page in pages for f in page.failures]
    for sn, seed in expected.items():
        order = got[sn]
        # Shopee gives per-unit discounted prices, so a line discount that does not divide by
        # the quantity is off by up to a cent per unit; total_amount itself is exact.
        tolerance = Decimal("0.01") * sum(i.quantity for i in seed.items)
        assert abs(order.subtotal - seed.subtotal) <= tolerance
        if order.raw_status == "UNPAID":
            assert order.total == order.subtotal + order.shipping_fee
        else:
            assert order.total == seed.total
            assert order.subtotal + order.shipping_fee - order.discount == order.total
        assert order.shipping_fee == seed.shipping_fee
        assert order.status == OrderStatus(seed.status)
        assert order.is_cod == seed.is_cod
        assert order.paid_at == seed.paid_at
        assert order.updated_at == seed.updated_at and order.created_at == seed.created_at
        assert [(i.sku, i.quantity, i.unit_price) for i in order.items] == [
            (i.sku, i.quantity, i.unit_price) for i in seed.items
        ]
        assert order.shipping_address is not None
        assert order.shipping_address.postal_code == seed.address.postal_code
        assert order.buyer_phone == seed.buyer_phone
    paid = [sn for sn, o in got.items() if o.raw_status != "UNPAID"]
    assert sum(got[sn].total for sn in paid) == sum(expected[sn].total for sn in paid)
    # Every Shopee status shows up in a big seeded shop, and each maps to a known status.
    assert {o.raw_status for o in got.values()} == set(ORDER_STATUSES)
    assert elapsed < 20


async def test_unpaid_orders_have_no_total_amount_and_use_subtotal_plus_shipping(
    env: Env,
) -> None:
    shop, creds = env.add_shop(seed="unpaid", order_count=300, days=5)
    start, end = whole_range(shop)
    got = all_orders(await collect(env.client(creds), start, end))
    unpaid = [o for o in got.values() if o.raw_status == "UNPAID"]
    assert unpaid
    for order in unpaid:
        assert "total_amount" not in order.raw and order.paid_at is None
        assert order.total == order.subtotal + order.shipping_fee


async def test_get_orders_by_id(env: Env) -> None:
    shop, creds = env.add_shop(order_count=120, days=5)
    expected = seed_orders(shop)
    wanted = [*sorted(expected)[:55], "260101UNKNOWN1"]
    orders = await env.client(creds).get_orders(wanted)
    assert {o.external_order_id for o in orders} == set(wanted[:55])


# --- tokens ----------------------------------------------------------------------------------


async def test_token_expiring_mid_sync_is_refreshed_once(env: Env) -> None:
    shop, creds = env.add_shop(order_count=1500, days=20)
    store = MemoryTokenStore(creds)
    client = env.client(creds, store)
    start, end = whole_range(shop)
    pages = []
    async for page in client.iter_orders(start, end):
        pages.append(page)
        if len(pages) == 3:
            env.state.tokens.expire_all()
    assert set(all_orders(pages)) == set(seed_orders(shop))
    assert env.state.tokens.refreshes == 1 and store.refresh_count == 1
    assert store.credentials.access_token != creds.access_token
    assert store.credentials.refresh_token != creds.refresh_token


async def test_token_near_expiry_is_refreshed_before_the_call(env: Env) -> None:
    _shop, creds = env.add_shop()
    creds.access_expires_at = datetime.now(UTC) + timedelta(minutes=1)
    store = MemoryTokenStore(creds)
    await env.client(creds, store).check_shop()
    assert env.state.tokens.refreshes == 1
    assert store.credentials.access_expires_at is not None
    assert store.credentials.access_expires_at > datetime.now(UTC) + timedelta(hours=3)


async def test_two_concurrent_refreshes_share_one_refresh(env: Env) -> None:
    shop, creds = env.add_shop()
    store = MemoryTokenStore(creds)
    first, second = env.client(creds, store), env.client(creds, store)
    env.state.tokens.expire_all()
    infos = await asyncio.gather(first.check_shop(), second.check_shop())
    assert [i.name for i in infos] == [shop.name, shop.name]
    assert env.state.tokens.refreshes == 1 and store.refresh_count == 1
    assert first.credentials.access_token == second.credentials.access_token


async def test_a_refresh_token_works_once(env: Env) -> None:
    _, creds = env.add_shop()
    client = env.client(creds)
    pair = await client.refresh_tokens(creds)
    assert pair.refresh_token and pair.refresh_token != creds.refresh_token
    with pytest.raises(ReauthRequiredError) as caught:
        await client.refresh_tokens(creds)
    assert "refresh_token" in caught.value.message


async def test_expired_token_with_spent_refresh_token_needs_reauthorization(env: Env) -> None:
    _, creds = env.add_shop()
    client = env.client(creds)
    await client.refresh_tokens(creds)  # spends the stored refresh token elsewhere
    env.state.tokens.expire_all()
    with pytest.raises(ReauthRequiredError):
        await client.check_shop()


async def test_expire_tokens_fault_forces_a_refresh(env: Env) -> None:
    shop, creds = env.add_shop(order_count=200, days=5)
    env.state.faults.expire_tokens_next = 1
    start, end = whole_range(shop)
    pages = await collect(env.client(creds), start, end)
    assert set(all_orders(pages)) == set(seed_orders(shop))
    assert env.state.tokens.refreshes == 1


# --- faults ----------------------------------------------------------------------------------


async def test_rate_limits_5xx_and_malformed_answers_mid_sync_lose_no_order(env: Env) -> None:
    shop, creds = env.add_shop(seed="faults", order_count=3000, days=30)
    env.state.faults.update(
        {"rate_limit_rate": 0.1, "server_error_rate": 0.05, "malformed_rate": 0.05, "seed": 7}
    )
    start, end = whole_range(shop)
    pages = await collect(env.client(creds, max_attempts=12), start, end)
    got = all_orders(pages)
    assert set(got) == set(seed_orders(shop))
    expected_calls = 2 + 30 + 60  # at least: list pages + detail batches without faults
    assert sum(env.state.calls.values()) > expected_calls


async def test_injected_failures_are_retried_with_counted_attempts(env: Env) -> None:
    _shop, creds = env.add_shop()
    env.state.faults.fail_next_rate_limit = 2
    env.state.faults.fail_next_server_error = 1
    await env.client(creds).check_shop()
    assert env.state.calls["/api/v2/shop/get_shop_info"] == 4


async def test_persistent_server_errors_give_up_after_max_attempts(env: Env) -> None:
    _shop, creds = env.add_shop()
    env.state.faults.server_error_rate = 1.0
    with pytest.raises(TransientError):
        await env.client(creds, max_attempts=3).check_shop()
    assert env.state.calls["/api/v2/shop/get_shop_info"] == 3


# --- products and stock ----------------------------------------------------------------------


async def test_products_list_variations_prices_and_stock(env: Env) -> None:
    shop, creds = env.add_shop(product_count=130)
    pages = [page async for page in env.client(creds).iter_products()]
    products = {p.external_product_id: p for page in pages for p in page}
    assert len(products) == 130
    for seed in shop.seeded.products:
        product = products[str(seed.product_id)]
        assert product.name == seed.name and product.currency == "THB"
        assert [(v.sku, v.price, v.stock) for v in product.variations] == [
            (v.sku, v.price, v.stock) for v in seed.variations
        ]
        if len(seed.variations) > 1:
            assert [v.name for v in product.variations] == [v.name for v in seed.variations]
            ids = [v.external_variation_id for v in product.variations]
            assert ids == [str(v.variation_id) for v in seed.variations]
        else:
            assert product.variations[0].external_variation_id == "0"
    assert {p.status for p in products.values()} == {"NORMAL", "UNLIST"}


async def test_stock_update_round_trip(env: Env) -> None:
    shop, creds = env.add_shop()
    client = env.client(creds)
    multi = next(p for p in shop.seeded.products if len(p.variations) > 1)
    single = next(p for p in shop.seeded.products if len(p.variations) == 1)
    updates = [
        StockUpdate(multi.variations[1].sku, 77),  # resolved by SKU
        StockUpdate(
            single.variations[0].sku,
            12,
            external_product_id=str(single.product_id),
            external_variation_id="0",
        ),
        StockUpdate(
            "SKU-WRONG-MODEL",
            5,
            external_product_id=str(multi.product_id),
            external_variation_id="1",
        ),
        StockUpdate("SKU-NOPE", 3),
    ]
    results = await client.update_stock(updates)
    assert [(r.sku, r.ok) for r in results] == [
        (multi.variations[1].sku, True),
        (single.variations[0].sku, True),
        ("SKU-WRONG-MODEL", False),
        ("SKU-NOPE", False),
    ]
    assert results[2].message == "Model_id is not found."
    stocks = {
        v.sku: v.stock async for page in client.iter_products() for p in page for v in p.variations
    }
    assert stocks[multi.variations[1].sku] == 77
    assert stocks[single.variations[0].sku] == 12


# --- control endpoints -----------------------------------------------------------------------


async def test_control_endpoints_create_shop_change_orders_and_push(env: Env) -> None:
    created = await env.http.post(
        "/_sandbox/shops", json={"shopId": "880000001", "seed": "ctl", "orderCount": 50, "days": 3}
    )
    assert created.status_code == 201
    creds = credentials_of(created.json())
    shop = env.state.shops[880000001]
    target = sorted(seed_orders(shop))[0]
    changed = await env.http.post(
        "/_sandbox/orders/change",
        json={"shopId": "880000001", "orderIds": [target], "status": "CANCELLED"},
    )
    assert changed.json()["changed"] == [{"orderId": target, "status": "cancelled"}]
    since = datetime.now(UTC) - timedelta(seconds=5)
    recent = all_orders(
        await collect(env.client(creds), since, datetime.now(UTC) + timedelta(seconds=5))
    )
    assert recent[target].status is OrderStatus.CANCELLED

    received: list[httpx.Request] = []

    async def receiver(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(204)

    env.state.webhook_transport = httpx.MockTransport(receiver)
    url = "https://omni.example/api/webhooks/marketplace"
    sent = await env.http.post("/_sandbox/webhooks/send", json={"shopId": 880000001, "url": url})
    assert sent.json()["sent"] == 1
    [push] = received
    body = json.loads(push.content)
    assert body["code"] == 3 and body["shop_id"] == 880000001
    assert body["data"]["ordersn"] == target and body["data"]["status"] == "CANCELLED"
    expected = hmac.new(
        creds.api_secret.encode(), url.encode() + b"|" + push.content, hashlib.sha256
    ).hexdigest()
    assert push.headers["Authorization"] == expected

    fraction = await env.http.post(
        "/_sandbox/orders/change", json={"shopId": 880000001, "fraction": 0.1}
    )
    assert len(fraction.json()["changed"]) == 5
    faults = await env.http.post("/_sandbox/faults", json={"rate_limit_rate": 0.5})
    assert faults.json()["rate_limit_rate"] == 0.5
    bad = await env.http.post("/_sandbox/faults", json={"nonsense": 1})
    assert bad.status_code == 400
    await env.http.post("/_sandbox/faults", json={"reset": True})
    await env.http.post("/_sandbox/tokens/expire")
    assert env.state.tokens.check_access(creds.access_token) is None


def test_seed_demo_returns_connection_credentials() -> None:
    state = ShopeeSandbox()
    creds = seed_demo(state)
    assert {"apiKey", "apiSecret", "accessToken", "refreshToken", "shopId"} <= set(creds)
    shop = state.shops[int(creds["shopId"])]
    assert str(shop.partner_id) == creds["apiKey"] and shop.partner_key == creds["apiSecret"]
    assert shop.seeded.order_count > 0
    assert Decimal(str(shop.seeded.order(0).total)) == shop.seeded.order(0).total
