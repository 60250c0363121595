"""The Lazada client against the Lazada sandbox, in-process over ASGI."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from app.config import ClientTuning
from app.platforms.base import ClientConfig, MemoryTokenStore, OrderPage
from app.platforms.errors import PermanentError, ReauthRequiredError
from app.platforms.lazada.auth import LazadaAuth, verify_push
from app.platforms.lazada.client import LazadaClient
from app.platforms.lazada.mapping import parse_time
from app.platforms.types import Credentials, NormalizedOrder, OrderStatus, StockUpdate
from app.sandbox.lazada import LazadaSandbox, LazadaShop, create_app, seed_demo
from app.sandbox.seed import SeededShop

from .test_mapping import EXPECTED, assert_matches_seed

BASE = "http://lazada.sandbox"


def tuning(**overrides: Any) -> ClientTuning:
    values: dict[str, Any] = {
        "calls_per_second": 10_000,
        "detail_concurrency": 4,
        "backoff_base_seconds": 0.001,
        "backoff_cap_seconds": 0.01,
        "max_attempts": 6,
        "timeout_seconds": 10,
    }
    values.update(overrides)
    return ClientTuning.model_construct(**values)


def credentials_of(creds: dict[str, str]) -> Credentials:
    return Credentials(
        shop_id=creds["shopId"],
        api_key=creds["apiKey"],
        api_secret=creds["apiSecret"],
        access_token=creds["accessToken"],
        refresh_token=creds["refreshToken"],
    )


@dataclass
class Env:
    state: LazadaSandbox
    http: httpx.AsyncClient
    offsets: list[int] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def add_shop(self, **kwargs: Any) -> tuple[LazadaShop, Credentials]:
        creds = self.state.add_shop(**kwargs)
        return self.state.shops[creds["shopId"]], credentials_of(creds)

    def client(
        self, creds: Credentials, store: MemoryTokenStore | None = None, **overrides: Any
    ) -> LazadaClient:
        return LazadaClient(
            creds,
            ClientConfig(
                base_url=f"{BASE}/rest", auth_url=f"{BASE}/auth/rest", tuning=tuning(**overrides)
            ),
            token_store=store or MemoryTokenStore(creds),
            http_client=self.http,
            events=lambda name, data: self.events.append((name, dict(data))),
        )


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    state = LazadaSandbox()
    offsets: list[int] = []

    async def record(request: httpx.Request) -> None:
        if request.url.path.endswith("/orders/get") and "offset" in request.url.params:
            offsets.append(int(request.url.params["offset"]))

    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(
        transport=transport, base_url=BASE, event_hooks={"request": [record]}
    ) as http:
        yield Env(state, http, offsets)


def window(lz: LazadaShop) -> tuple[datetime, datetime]:
    return lz.shop.start - timedelta(days=1), datetime.now(UTC) + timedelta(minutes=1)


async def fetch_all(client: LazadaClient, start: datetime, end: datetime) -> list[OrderPage]:
    return [page async for page in client.iter_orders(start, end)]


def orders_of(pages: list[OrderPage]) -> list[NormalizedOrder]:
    assert not [f for p in pages for f in p.failures]
    return [o for p in pages for o in p.orders]


def assert_resume_points_are_safe(pages: list[OrderPage], end: datetime) -> None:
    """resume_from never goes back, and no order after a page is older than its resume point."""
    points = [p.resume_from for p in pages]
    assert points == sorted(points) and points[-1] == end
    for number, page in enumerate(pages):
        later = [o.updated_at for p in pages[number + 1 :] for o in p.orders]
        assert all(ts >= page.resume_from for ts in later)


async def test_an_empty_shop_gives_one_empty_final_page(env: Env) -> None:
    lz, creds = env.add_shop(seed="empty", order_count=0)
    start, end = window(lz)
    pages = await fetch_all(env.client(creds), start, end)
    assert [(len(p.orders), p.resume_from) for p in pages] == [(0, end)]
    assert env.state.calls["/orders/get"] == 1 and env.state.calls["/orders/items/get"] == 0


async def test_exactly_one_hundred_orders(env: Env) -> None:
    lz, creds = env.add_shop(seed="hundred", order_count=100)
    start, end = window(lz)
    pages = await fetch_all(env.client(creds), start, end)
    orders = orders_of(pages)
    assert sorted(int(o.external_order_id) for o in orders) == [
        lz.shop.order_id(i) for i in range(100)
    ]
    assert env.offsets == [0, 99]  # the second page only re-reads the overlap row
    assert_resume_points_are_safe(pages, end)


async def test_5001_orders_cross_the_offset_limit(env: Env) -> None:
    lz, creds = env.add_shop(seed="limit", order_count=5001)
    start, end = window(lz)
    pages = await fetch_all(env.client(creds), start, end)
    ids = [int(o.external_order_id) for o in orders_of(pages)]
    assert len(ids) == len(set(ids)) == 5001
    assert set(ids) == {lz.shop.order_id(i) for i in range(5001)}
    assert max(env.offsets) <= 5000 - 100
    assert env.offsets.count(0) >= 2  # the window moved and paging restarted
    assert_resume_points_are_safe(pages, end)


async def test_a_10000_order_shop_is_fetched_completely_and_correctly(env: Env) -> None:
    lz, creds = env.add_shop(seed="big", order_count=10_000)
    start, end = window(lz)
    pages = await fetch_all(env.client(creds), start, end)
    orders = orders_of(pages)
    assert len(orders) == 10_000
    by_id = {int(o.external_order_id): o for o in orders}
    assert set(by_id) == {lz.shop.order_id(i) for i in range(10_000)}
    statuses: Counter[OrderStatus] = Counter()
    for index in range(10_000):
        seed = lz.shop.order(index)
        assert_matches_seed(by_id[seed.order_id], seed)  # amounts, quantities, status, times
        statuses[by_id[seed.order_id].status] += 1
    assert set(statuses) == set(EXPECTED.values())
    assert sum((o.total for o in orders), Decimal(0)) == sum(
        (lz.shop.order(i).total for i in range(10_000)), Decimal(0)
    )
    assert_resume_points_are_safe(pages, end)


async def test_more_than_5000_orders_in_one_second_are_all_fetched(env: Env) -> None:
    moment = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
    shop = SeededShop(
        seed="burst", order_count=9000, start=moment, end=moment + timedelta(seconds=2)
    )
    per_second = Counter(shop.order(i).updated_at for i in range(shop.order_count))
    assert max(per_second.values()) > 5000  # the window cannot advance past that second
    _, creds = env.add_shop(shop=shop)
    end = moment + timedelta(minutes=1)
    pages = await fetch_all(env.client(creds), moment - timedelta(minutes=1), end)
    ids = [int(o.external_order_id) for o in orders_of(pages)]
    assert len(ids) == len(set(ids)) == 9000
    assert pages[-1].resume_from == end


async def test_items_are_grouped_into_quantities(env: Env) -> None:
    lz, creds = env.add_shop(seed="units", order_count=300)
    start, end = window(lz)
    orders = orders_of(await fetch_all(env.client(creds), start, end))
    multi = 0
    for order in orders:
        seed = lz.shop.get(int(order.external_order_id))
        assert seed is not None
        wanted = Counter({i.sku: 0 for i in seed.items})
        for item in seed.items:
            wanted[item.sku] += item.quantity
        assert Counter({i.sku or "": i.quantity for i in order.items}) == wanted
        assert len(order.raw["items"]) == sum(i.quantity for i in seed.items)
        multi += any(i.quantity > 1 for i in order.items)
    assert multi > 50  # the shop really has multi-unit lines


async def test_an_expired_token_mid_sync_is_refreshed_once(env: Env) -> None:
    lz, creds = env.add_shop(seed="expiry", order_count=1000)
    store = MemoryTokenStore(creds)
    client = env.client(creds, store)
    start, end = window(lz)
    ids: list[str] = []
    async for page in client.iter_orders(start, end):
        if not ids:  # after the first page, with list and item calls still to come
            response = await env.http.post("/_sandbox/tokens/expire")
            assert response.status_code == 200
        ids += [o.external_order_id for o in page.orders]
    assert len(ids) == len(set(ids)) == 1000
    assert store.refresh_count == 1 and env.state.tokens.refreshes == 1
    assert store.credentials.access_token != creds.access_token
    assert ("token_refreshed", {"platform": "lazada"}) in env.events


async def test_an_injected_expired_token_is_refreshed_and_the_sync_completes(env: Env) -> None:
    lz, creds = env.add_shop(seed="expiry2", order_count=400)
    env.state.faults.expire_tokens_next = 1
    store = MemoryTokenStore(creds)
    start, end = window(lz)
    orders = orders_of(await fetch_all(env.client(creds, store), start, end))
    assert len({o.external_order_id for o in orders}) == 400
    assert env.state.tokens.refreshes == 1 == store.refresh_count


async def test_two_concurrent_refreshes_give_one_refresh_at_the_sandbox(env: Env) -> None:
    lz, creds = env.add_shop(seed="race", order_count=50)
    store = MemoryTokenStore(creds)
    workers = [env.client(creds, store), env.client(creds, store)]
    env.state.tokens.expire_all()
    env.state.faults.latency_seconds = 0.02  # both calls are in flight when they fail
    shops = await asyncio.gather(*(w.check_shop() for w in workers))
    assert [s.shop_id for s in shops] == [lz.seller_id] * 2
    assert env.state.tokens.refreshes == 1 and store.refresh_count == 1

    env.state.tokens.expire_all()
    ids = [str(lz.shop.order_id(i)) for i in range(50)]
    found = await workers[0].get_orders(ids)  # 50 concurrent /order/get calls, one refresh
    assert sorted(o.external_order_id for o in found) == sorted(ids)
    assert env.state.tokens.refreshes == 2 and store.refresh_count == 2


async def test_rate_limits_and_server_errors_mid_sync_still_yield_every_order(env: Env) -> None:
    lz, creds = env.add_shop(seed="faults", order_count=2000)
    env.state.faults.update(
        {"rate_limit_rate": 0.15, "server_error_rate": 0.1, "malformed_rate": 0.05, "seed": 7}
    )
    start, end = window(lz)
    pages = await fetch_all(env.client(creds, max_attempts=10), start, end)
    ids = {o.external_order_id for o in orders_of(pages)}
    assert ids == {str(lz.shop.order_id(i)) for i in range(2000)}
    reasons = Counter(data["reason"] for name, data in env.events if name == "retry")
    assert reasons["rate_limited"] > 0 and reasons["transient"] > 0


async def test_changed_orders_come_back_in_the_next_window(env: Env) -> None:
    lz, creds = env.add_shop(seed="changes", order_count=500)
    client = env.client(creds)
    start, end = window(lz)
    await fetch_all(client, start, end)
    response = await env.http.post(
        "/_sandbox/orders/change",
        json={"shopId": lz.seller_id, "fraction": 0.1, "status": "shipped"},
    )
    changed = {entry["orderId"] for entry in response.json()["changed"]}
    assert len(changed) == 50
    later = datetime.now(UTC) + timedelta(minutes=2)
    orders = orders_of(await fetch_all(client, end - timedelta(minutes=1), later))
    assert {o.external_order_id for o in orders} == changed
    assert {o.status for o in orders} == {OrderStatus.SHIPPED}


async def test_an_order_updated_mid_sync_does_not_make_paging_skip_one(env: Env) -> None:
    lz, creds = env.add_shop(seed="shift", order_count=1000)
    start, end = window(lz)
    ids: list[str] = []
    async for page in env.client(creds).iter_orders(start, end):
        if not ids:
            # Moves an already-read order to the end of the list: every later row shifts left.
            lz.shop.touch(lz.shop.index_of(int(page.orders[0].external_order_id)) or 0)
        ids += [o.external_order_id for o in page.orders]
    assert set(ids) == {str(lz.shop.order_id(i)) for i in range(1000)}
    assert env.offsets.count(0) == 2  # the shift was seen and the window restarted once


async def test_get_orders_reads_named_orders(env: Env) -> None:
    lz, creds = env.add_shop(seed="single", order_count=30)
    found = await env.client(creds).get_orders([str(lz.shop.order_id(3)), "2400000001"])
    assert [o.external_order_id for o in found] == [str(lz.shop.order_id(3))]
    assert_matches_seed(found[0], lz.shop.order(3))


async def test_stock_update_and_products(env: Env) -> None:
    lz, creds = env.add_shop(seed="stock", order_count=0)
    client = env.client(creds)
    products = [p async for page in client.iter_products() for p in page]
    assert len(products) == len(lz.shop.products)
    assert sum(len(p.variations) for p in products) == sum(
        len(p.variations) for p in lz.shop.products
    )
    target = products[0].variations[0]
    assert target.sku is not None
    results = await client.update_stock(
        [StockUpdate(sku=target.sku, quantity=321), StockUpdate(sku="NO-SUCH-SKU", quantity=1)]
    )
    assert [(r.sku, r.ok) for r in results] == [(target.sku, True), ("NO-SUCH-SKU", False)]
    found = lz.shop.variation_by_sku(target.sku)
    assert found is not None and found[1].stock == 321
    again = [p async for page in client.iter_products() for p in page]
    assert again[0].variations[0].stock == 321


async def test_wrong_credentials_are_refused_with_lazadas_reason(env: Env) -> None:
    _, creds = env.add_shop(seed="wrong")
    creds.api_secret = "not-the-secret"
    with pytest.raises(PermanentError) as caught:
        await env.client(creds).check_shop()
    assert "signature does not conform" in caught.value.message
    assert env.state.calls["/seller/get"] == 1


async def test_refresh_tokens_are_reusable_unless_configured_single_use(env: Env) -> None:
    _, creds = env.add_shop(seed="reuse")
    client = env.client(creds)
    first = await client.refresh_tokens(creds)
    second = await client.refresh_tokens(creds)  # the original refresh token still works
    assert first.access_token != second.access_token
    env.state.tokens.single_use_refresh = True
    await client.refresh_tokens(creds)
    with pytest.raises(ReauthRequiredError):
        await client.refresh_tokens(creds)


async def call(env: Env, creds: Credentials, path: str, **params: str) -> dict[str, Any]:
    auth = LazadaAuth(creds.api_key, creds.api_secret, path, creds.access_token)
    response = await env.http.get(f"/rest{path}", params=params, auth=auth)
    body: dict[str, Any] = response.json()
    return body


async def test_the_sandbox_enforces_lazadas_limits(env: Env) -> None:
    _, creds = env.add_shop(seed="limits", order_count=10)
    after = "2020-01-01T00:00:00+07:00"
    assert (await call(env, creds, "/orders/get", update_after=after, limit="101"))["code"] == (
        "InvalidParameter"
    )
    assert (await call(env, creds, "/orders/get", update_after=after, offset="5001"))[
        "code"
    ] == "InvalidParameter"
    assert (await call(env, creds, "/orders/get", update_after=after, offset="5000"))["code"] == "0"
    assert (await call(env, creds, "/orders/get"))["code"] == "MissingParameter"
    ok = await call(env, creds, "/orders/get", update_after=after, status="all")
    assert (ok["code"], ok["data"]["countTotal"]) == ("0", 10)
    assert {"code", "request_id", "data"} <= set(ok)
    for direction in ("ASC", "DESC"):
        pages = [
            await call(
                env,
                creds,
                "/orders/get",
                update_after=after,
                sort_by="updated_at",
                sort_direction=direction,
                offset=str(offset),
                limit="4",
            )
            for offset in (0, 4, 8)
        ]
        stamps = [parse_time(o["updated_at"]) for p in pages for o in p["data"]["orders"]]
        assert len(stamps) == 10 and stamps == sorted(stamps, reverse=direction == "DESC")

    stale = LazadaAuth(
        creds.api_key, creds.api_secret, "/seller/get", creds.access_token, clock=lambda: "1000"
    )
    answer = (await env.http.get("/rest/seller/get", auth=stale)).json()
    assert answer["code"] == "InvalidTimestamp"
    unsigned = await env.http.get("/rest/seller/get", params={"app_key": creds.api_key})
    assert unsigned.json()["code"] in ("IncompleteSignature", "InvalidTimestamp")
    creds.access_token = "unknown"
    assert (await call(env, creds, "/seller/get"))["code"] == "IllegalAccessToken"


async def test_webhooks_are_signed_as_lazada_signs_them(env: Env) -> None:
    received: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(200)

    env.state.webhook_transport = httpx.MockTransport(receiver)
    lz, _ = env.add_shop(seed="pushes", order_count=20)
    order_id = lz.shop.order_id(4)
    response = await env.http.post(
        "/_sandbox/webhooks/send",
        json={"shopId": lz.seller_id, "url": "https://omni.example/hooks", "orderIds": [order_id]},
    )
    units = sum(i.quantity for i in lz.shop.order(4).items)
    assert response.json()["sent"] == units == len(received)
    for request in received:
        raw = request.content
        assert verify_push(lz.app_key, lz.app_secret, raw, request.headers["Authorization"])
        message = json.loads(raw)
        assert message["message_type"] == 0 and message["seller_id"] == lz.seller_id
        assert message["data"]["trade_order_id"] == str(order_id)
    assert len({json.loads(r.content)["data"]["trade_order_line_id"] for r in received}) == units


async def test_control_endpoints_create_shops_and_faults(env: Env) -> None:
    response = await env.http.post(
        "/_sandbox/shops", json={"shopId": "555000111", "seed": "ctl", "orderCount": 12, "days": 5}
    )
    creds = response.json()
    assert response.status_code == 201 and creds["shopId"] == "555000111"
    assert env.state.shops["555000111"].shop.order_count == 12
    faults = await env.http.post("/_sandbox/faults", json={"failNextRateLimit": 1})
    assert faults.json()["fail_next_rate_limit"] == 1
    shop = await env.client(credentials_of(creds)).check_shop()
    assert shop.shop_id == "555000111" and env.state.faults.fail_next_rate_limit == 0
    assert (await env.http.post("/_sandbox/faults", json={"nope": 1})).status_code == 422


async def test_the_demo_shop_works(env: Env) -> None:
    creds = seed_demo(env.state)
    assert set(creds) == {"apiKey", "apiSecret", "accessToken", "refreshToken", "shopId"}
    shop = await env.client(credentials_of(creds)).check_shop()
    assert shop.name == "Lazada Demo Shop (Sandbox)"
