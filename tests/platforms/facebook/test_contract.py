"""The Facebook client against the Meta sandbox, in-process over ASGI."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from app.config import ClientTuning
from app.platforms.base import ClientConfig
from app.platforms.errors import PermanentError, ReauthRequiredError
from app.platforms.facebook import FacebookClient
from app.platforms.facebook.auth import appsecret_proof, hub_signature_256
from app.platforms.types import Credentials, NormalizedOrder, OrderStatus, StockUpdate
from app.sandbox.facebook import FacebookSandbox, SandboxPage, create_app, seed_demo

ROOT = "http://graph.sandbox"
GRAPH = f"{ROOT}/v18.0"


class Harness:
    def __init__(self, state: FacebookSandbox | None = None) -> None:
        self.state = state or FacebookSandbox()
        self.requests: list[httpx.Request] = []

        async def record(request: httpx.Request) -> None:
            self.requests.append(request)

        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(self.state)),
            base_url=ROOT,
            event_hooks={"request": [record]},
        )

    def page(self, **kwargs: Any) -> SandboxPage:
        return self.state.add_page(**kwargs)

    def client(self, page: SandboxPage, **overrides: str) -> FacebookClient:
        creds = {**self.state.credentials(page), **overrides}
        credentials = Credentials(
            shop_id=creds["shopId"],
            api_key=creds["apiKey"],
            api_secret=creds["apiSecret"],
            access_token=creds["accessToken"],
        )
        tuning = ClientTuning.model_construct(
            calls_per_second=100000.0,
            detail_concurrency=4,
            backoff_base_seconds=0.001,
            backoff_cap_seconds=0.005,
            max_attempts=8,
            timeout_seconds=30.0,
        )
        return FacebookClient(
            credentials, ClientConfig(base_url=GRAPH, tuning=tuning), http_client=self.http
        )


async def fetch_all(client: FacebookClient, page: SandboxPage) -> tuple[list[NormalizedOrder], int]:
    orders: list[NormalizedOrder] = []
    pages = 0
    start, end = page.shop.start - timedelta(days=1), page.shop.end + timedelta(days=1)
    async for result in client.iter_orders(start, end):
        assert not result.failures
        orders.extend(result.orders)
        pages += 1
    return orders, pages


def order_list_calls(harness: Harness) -> list[httpx.Request]:
    return [
        r
        for r in harness.requests
        if r.url.path.endswith("/commerce_orders") and "filters" not in r.url.params
    ]


async def test_empty_shop_yields_one_empty_final_page() -> None:
    harness = Harness()
    page = harness.page(seed="empty", order_count=0)
    orders, pages = await fetch_all(harness.client(page), page)
    assert orders == [] and pages == 1


async def test_exactly_one_hundred_orders_come_in_one_page() -> None:
    harness = Harness()
    page = harness.page(seed="hundred", order_count=100)
    orders, pages = await fetch_all(harness.client(page), page)
    assert len(orders) == 100 and len({o.external_order_id for o in orders}) == 100
    assert pages == 1 and len(order_list_calls(harness)) == 1


async def test_ten_thousand_orders_are_fetched_completely_and_correctly() -> None:
    harness = Harness()
    page = harness.page(seed="big", order_count=10_000, days=120)
    orders, pages = await fetch_all(harness.client(page), page)
    seeded = [page.shop.order(i) for i in range(10_000)]
    assert sorted(o.external_order_id for o in orders) == sorted(
        page.node_id(s.order_id) for s in seeded
    )
    assert sum((o.total for o in orders), Decimal("0")) == sum(
        (s.total for s in seeded), Decimal("0")
    )
    by_id = {o.external_order_id: o for o in orders}
    for s in seeded[::97]:
        mapped = by_id[page.node_id(s.order_id)]
        assert mapped.total == s.total and mapped.updated_at == s.updated_at
        assert sum(i.quantity for i in mapped.items) == sum(i.quantity for i in s.items)
    assert pages == 100
    # Sync is read-only: nothing was posted to the sandbox.
    assert harness.state.post_paths == []


async def test_every_meta_state_and_refined_status_comes_back() -> None:
    harness = Harness()
    page = harness.page(seed="states", order_count=600)
    orders, _ = await fetch_all(harness.client(page), page)
    assert {o.raw_status for o in orders} == {
        "FB_PROCESSING",
        "CREATED",
        "IN_PROGRESS",
        "COMPLETED",
    }
    assert {
        OrderStatus.CANCELLED,
        OrderStatus.RETURNED,
        OrderStatus.COMPLETED,
        OrderStatus.PENDING,
        OrderStatus.UNPAID,
    } <= {o.status for o in orders}
    by_id = {o.external_order_id: o for o in orders}
    cancelled = next(
        page.shop.order(i) for i in range(600) if page.shop.order(i).status == "cancelled"
    )
    assert by_id[page.node_id(cancelled.order_id)].status is OrderStatus.CANCELLED


async def test_paging_uses_the_after_cursor_and_never_a_next_url() -> None:
    harness = Harness()
    page = harness.page(seed="paging", order_count=350)
    orders, pages = await fetch_all(harness.client(page), page)
    assert len(orders) == 350 and pages == 4
    calls = order_list_calls(harness)
    assert len(calls) == 4
    assert "after" not in calls[0].url.params
    assert all("after" in c.url.params for c in calls[1:])
    assert len({c.url.params["after"] for c in calls[1:]}) == 3
    for request in harness.requests:
        # The sandbox's `next` URLs carry access_token: a followed one would show it.
        assert "access_token" not in request.url.params
        assert request.url.host == "graph.sandbox"


async def test_rate_limits_and_server_errors_mid_sync_still_yield_every_order() -> None:
    harness = Harness()
    page = harness.page(seed="faults", order_count=1500)
    harness.state.faults.update(
        {"rate_limit_rate": 0.15, "server_error_rate": 0.1, "malformed_rate": 0.05, "seed": 7}
    )
    orders, _ = await fetch_all(harness.client(page), page)
    assert len({o.external_order_id for o in orders}) == 1500
    assert sum((o.total for o in orders), Decimal("0")) == sum(
        (page.shop.order(i).total for i in range(1500)), Decimal("0")
    )
    retried = len(harness.requests) - len({str(r.url) for r in harness.requests})
    assert retried > 0


async def test_expired_token_needs_reauthorization() -> None:
    harness = Harness()
    page = harness.page(seed="expiry")
    client = harness.client(page)
    assert (await client.check_shop()).name == page.name
    answer = await harness.http.post("/_sandbox/tokens/expire", json={"shopId": page.page_id})
    assert answer.json() == {"expired": 1}
    with pytest.raises(ReauthRequiredError) as caught:
        await client.check_shop()
    assert caught.value.code == "190/463"


async def test_token_expiring_mid_sync_stops_with_reauth_required() -> None:
    harness = Harness()
    page = harness.page(seed="midsync", order_count=300)
    client = harness.client(page)
    pages = client.iter_orders(page.shop.start, page.shop.end + timedelta(seconds=1))
    first = await pages.__anext__()
    assert len(first.orders) == 100
    harness.state.faults.update({"expire_tokens_next": 1})
    with pytest.raises(ReauthRequiredError):
        await pages.__anext__()


async def test_wrong_credentials_are_refused_with_the_platforms_reason() -> None:
    harness = Harness()
    page = harness.page(seed="creds")
    other = harness.page(seed="other")
    with pytest.raises(PermanentError, match="Invalid appsecret_proof"):
        await harness.client(page, apiSecret="wrong").check_shop()
    with pytest.raises(ReauthRequiredError, match="Invalid OAuth access token"):
        await harness.client(page, accessToken="EAAnope").check_shop()
    # A Page token names its own Page (/me), whatever shopId says: the caller compares.
    reported = await harness.client(page, shopId=other.page_id).check_shop()
    assert reported.shop_id == page.page_id


async def test_sandbox_defaults_to_created_orders_and_clamps_the_limit() -> None:
    harness = Harness()
    page = harness.page(seed="raw", order_count=300)
    token = harness.state.credentials(page)["accessToken"]
    proof = appsecret_proof(token, page.app_secret)
    base = {"access_token": token, "appsecret_proof": proof}
    url = f"/v18.0/{page.cms_id}/commerce_orders"
    default = (await harness.http.get(url, params={**base, "fields": "id,order_status"})).json()
    assert len(default["data"]) == 25
    assert {o["order_status"]["state"] for o in default["data"]} == {"CREATED"}
    everything = await harness.http.get(
        url, params={**base, "limit": 500, "state": "FB_PROCESSING,CREATED,IN_PROGRESS,COMPLETED"}
    )
    body = everything.json()
    assert len(body["data"]) == 100 and "next" in body["paging"]
    assert "access_token=" in body["paging"]["next"]
    missing_proof = await harness.http.get(url, params={"access_token": token})
    assert missing_proof.status_code == 400 and missing_proof.json()["error"]["code"] == 100
    unknown_field = await harness.http.get(url, params={**base, "fields": "id,total"})
    assert "nonexisting field" in unknown_field.json()["error"]["message"]


async def test_updated_window_filters_orders() -> None:
    harness = Harness()
    page = harness.page(seed="window", order_count=400)
    mid = page.shop.start + (page.shop.end - page.shop.start) / 2
    client = harness.client(page)
    got = {
        o.external_order_id async for p in client.iter_orders(mid, page.shop.end) for o in p.orders
    }
    expected = {page.node_id(o.order_id) for o in page.shop.updated_between(mid, page.shop.end)}
    assert expected <= got
    # Only the one-second overlap before `mid` may add orders.
    for extra in got - expected:
        found = harness.state.order_node(extra)
        assert found is not None
        assert mid - timedelta(seconds=1) <= found[1].updated_at < mid


async def test_changed_orders_show_up_in_the_next_window() -> None:
    harness = Harness()
    page = harness.page(seed="change", order_count=200)
    client = harness.client(page)
    before = datetime.now(UTC) - timedelta(seconds=2)
    answer = await harness.http.post(
        "/_sandbox/orders/change", json={"shopId": page.page_id, "fraction": 0.1}
    )
    changed = {entry["orderId"] for entry in answer.json()["changed"]}
    assert len(changed) == 20
    got = {
        o.external_order_id
        async for p in client.iter_orders(before, datetime.now(UTC) + timedelta(seconds=2))
        for o in p.orders
    }
    assert changed <= got


async def test_get_orders_reads_single_orders_with_their_edges() -> None:
    harness = Harness()
    page = harness.page(seed="single", order_count=300)
    wanted = {}
    for status in ("cancelled", "returned", "completed", "pending"):
        seeded = next(page.shop.order(i) for i in range(300) if page.shop.order(i).status == status)
        wanted[page.node_id(seeded.order_id)] = status
    orders = await harness.client(page).get_orders([*wanted, "999"])
    statuses = {o.external_order_id: o.status.value for o in orders}
    assert statuses == {
        oid: {
            "cancelled": "cancelled",
            "returned": "returned",
            "completed": "completed",
            "pending": "pending",
        }[s]
        for oid, s in wanted.items()
    }
    assert harness.state.post_paths == []


async def test_paged_inline_items_are_completed_from_the_items_edge() -> None:
    harness = Harness()
    harness.state.inline_items_limit = 1
    page = harness.page(seed="items", order_count=150)
    orders, _ = await fetch_all(harness.client(page), page)
    by_id = {o.external_order_id: o for o in orders}
    for i in range(150):
        seeded = page.shop.order(i)
        assert len(by_id[page.node_id(seeded.order_id)].items) == len(seeded.items)
    assert any(r.url.path.endswith("/items") for r in harness.requests)


async def test_products_and_stock_round_trip() -> None:
    harness = Harness()
    page = harness.page(seed="stock", product_count=30)
    client = harness.client(page)
    products = [p async for chunk in client.iter_products() for p in chunk]
    assert len(products) == 30
    assert sum(len(p.variations) for p in products) == sum(
        len(p.variations) for p in page.shop.products
    )
    sku = products[3].variations[0].sku
    assert sku is not None
    results = await client.update_stock([StockUpdate(sku, 42), StockUpdate("NOPE", 1)])
    assert [(r.sku, r.ok) for r in results] == [(sku, True), ("NOPE", False)]
    found = page.shop.variation_by_sku(sku)
    assert found is not None and found[1].stock == 42
    again = [p async for chunk in client.iter_products() for p in chunk]
    assert next(v.stock for p in again for v in p.variations if v.sku == sku) == 42


async def test_sandbox_sends_signed_webhooks() -> None:
    received: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(200)

    harness = Harness()
    harness.state.webhook_client = httpx.AsyncClient(transport=httpx.MockTransport(receiver))
    page = harness.page(seed="hooks", order_count=20)
    oid = page.node_id(page.shop.order(3).order_id)
    answer = await harness.http.post(
        "/_sandbox/webhooks/send",
        json={
            "shopId": page.page_id,
            "url": "https://app.test/api/webhooks/facebook",
            "orderIds": [oid],
        },
    )
    assert answer.json() == {"status": 200, "orderIds": [oid]}
    request = received[0]
    assert request.headers["X-Hub-Signature-256"] == hub_signature_256(
        page.app_secret, request.content
    )
    body = json.loads(request.content)
    change = body["entry"][0]["changes"][0]
    assert body["object"] == "page" and body["entry"][0]["id"] == page.page_id
    assert change["value"]["order_id"] == oid


async def test_control_endpoint_creates_shops_with_working_credentials() -> None:
    harness = Harness()
    answer = await harness.http.post(
        "/_sandbox/shops", json={"shopId": "777", "seed": "ctl", "orderCount": 30, "days": 10}
    )
    assert answer.status_code == 201
    creds = answer.json()
    assert creds["shopId"] == "777" and creds["apiSecret"] and creds["apiKey"]
    page = harness.state.pages["777"]
    orders, _ = await fetch_all(harness.client(page, accessToken=creds["accessToken"]), page)
    assert len(orders) == 30
    bad = await harness.http.post("/_sandbox/faults", json={"nonsense": 1})
    assert bad.status_code == 400


async def test_seed_demo_gives_credentials_that_connect() -> None:
    harness = Harness()
    creds = seed_demo(harness.state)
    assert set(creds) == {"apiKey", "apiSecret", "accessToken", "shopId"}
    page = harness.state.pages[creds["shopId"]]
    client = harness.client(page, accessToken=creds["accessToken"])
    assert (await client.check_shop()).name == page.name
    orders, _ = await fetch_all(client, page)
    assert len(orders) == page.shop.order_count > 0
