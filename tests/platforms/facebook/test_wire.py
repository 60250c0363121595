"""Wire format and error handling of the Facebook client, against respx mocks."""

import json
import math
import types
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from app.config import ClientTuning
from app.platforms import http as http_module
from app.platforms.base import ClientConfig
from app.platforms.errors import (
    PermanentError,
    RateLimitedError,
    ReauthRequiredError,
    TransientError,
)
from app.platforms.facebook import FacebookClient
from app.platforms.facebook.auth import appsecret_proof
from app.platforms.http import RateLimiter
from app.platforms.types import Credentials, OrderStatus, StockUpdate

BASE = "https://graph.test/v18.0"
PAGE, CMS, CATALOG = "1111", "2222", "3333"
TOKEN, SECRET = "EAAB-test-token", "app-secret"
FROM = datetime(2024, 3, 1, 0, 0, 0, 500_000, tzinfo=UTC)
TO = datetime(2024, 3, 2, 12, 0, 0, 250_000, tzinfo=UTC)


def tuning(**kwargs: Any) -> ClientTuning:
    values = {
        "calls_per_second": 10000.0,
        "backoff_base_seconds": 0.001,
        "backoff_cap_seconds": 0.005,
        "max_attempts": 4,
        "detail_concurrency": 4,
        **kwargs,
    }
    return ClientTuning.model_construct(**values)


def make_client(*, expires: datetime | None = None, **kwargs: Any) -> FacebookClient:
    credentials = Credentials(
        shop_id=PAGE,
        api_key="app-id",
        api_secret=SECRET,
        access_token=TOKEN,
        access_expires_at=expires,
    )
    return FacebookClient(credentials, ClientConfig(base_url=BASE, tuning=tuning()), **kwargs)


def graph_error(
    status: int,
    code: int,
    *,
    subcode: int | None = None,
    headers: dict[str, str] | None = None,
    is_transient: bool = False,
) -> httpx.Response:
    error: dict[str, Any] = {
        "message": f"error {code}",
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "TRACE1",
        "is_transient": is_transient,
    }
    if subcode:
        error["error_subcode"] = subcode
    return httpx.Response(status, json={"error": error}, headers=headers)


def order(order_id: str, state: str = "CREATED", **extra: Any) -> dict[str, Any]:
    payload = {
        "id": order_id,
        "order_status": {"state": state},
        "created": "2024-03-01T10:00:00+0000",
        "last_updated": "2024-03-01T11:00:00+0000",
        "items": {
            "data": [
                {
                    "id": f"{order_id}-1",
                    "retailer_id": "SKU-1",
                    "product_id": "P1",
                    "product_name": "Shirt",
                    "quantity": 2,
                    "price_per_unit": {"amount": "100.10", "currency": "THB"},
                }
            ]
        },
        "estimated_payment_details": {
            "subtotal": {
                "items": {"amount": "200.20", "currency": "THB"},
                "shipping": {"amount": "38.00", "currency": "THB"},
            },
            "tax": {"amount": "0.00", "currency": "THB"},
            "total_amount": {"amount": "218.20", "currency": "THB"},
        },
    }
    payload.update(extra)
    return payload


@pytest.fixture
def graph() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.get(f"/{PAGE}/commerce_merchant_settings").mock(
            return_value=httpx.Response(200, json={"data": [{"id": CMS}]})
        )
        router.get(f"/{CMS}/product_catalogs").mock(
            return_value=httpx.Response(200, json={"data": [{"id": CATALOG, "name": "c"}]})
        )
        yield router


async def collect(pages: AsyncIterator[Any]) -> list[Any]:
    return [page async for page in pages]


def orders_route(
    graph: respx.MockRouter,
    main: Callable[[httpx.Request], httpx.Response],
    flagged: dict[str, list[str]] | None = None,
) -> respx.Route:
    flagged = flagged or {}

    def handler(request: httpx.Request) -> httpx.Response:
        filters = request.url.params.get("filters")
        if filters is not None:
            ids = flagged.get(filters, [])
            return httpx.Response(200, json={"data": [{"id": i} for i in ids]})
        return main(request)

    return graph.get(f"/{CMS}/commerce_orders").mock(side_effect=handler)


# --- requests ----------------------------------------------------------------------------------


async def test_check_shop_signs_requests_and_reads_page_and_commerce_account(
    graph: respx.MockRouter,
) -> None:
    page = graph.get("/me").mock(
        return_value=httpx.Response(200, json={"id": PAGE, "name": "ร้านทดสอบ"})
    )
    info = await make_client().check_shop()
    assert info.name == "ร้านทดสอบ" and info.shop_id == PAGE
    assert info.raw["commerce_merchant_settings_id"] == CMS
    sent = page.calls.last.request
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.url.params["appsecret_proof"] == appsecret_proof(TOKEN, SECRET)
    assert "name" in sent.url.params["fields"].split(",")
    assert TOKEN not in str(sent.url)


async def test_page_without_commerce_account_is_refused(graph: respx.MockRouter) -> None:
    graph.get("/me").mock(return_value=httpx.Response(200, json={"id": PAGE, "name": "x"}))
    graph.get(f"/{PAGE}/commerce_merchant_settings").mock(
        return_value=httpx.Response(200, json={"data": []})
    )
    with pytest.raises(PermanentError, match="no commerce account"):
        await make_client().check_shop()


async def test_iter_orders_asks_every_state_in_the_window_and_follows_only_the_after_cursor(
    graph: respx.MockRouter,
) -> None:
    seen: list[httpx.URL] = []

    def main(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        if request.url.params.get("after") is None:
            return httpx.Response(
                200,
                json={
                    "data": [order("A"), order("B", "COMPLETED")],
                    "paging": {
                        "cursors": {"before": "C0", "after": "C1"},
                        "next": "https://evil.test/v18.0/next?access_token=leak",
                    },
                },
            )
        assert request.url.params["after"] == "C1"
        return httpx.Response(
            200,
            json={"data": [order("C", "FB_PROCESSING")], "paging": {"cursors": {"after": "C2"}}},
        )

    orders_route(graph, main)
    pages = await collect(make_client().iter_orders(FROM, TO))

    assert [o.external_order_id for p in pages for o in p.orders] == ["A", "B", "C"]
    assert [p.resume_from for p in pages] == [FROM, TO]
    assert len(seen) == 2
    first = seen[0].params
    assert first["state"].split(",") == ["FB_PROCESSING", "CREATED", "IN_PROGRESS", "COMPLETED"]
    assert first["updated_after"] == str(math.floor(FROM.timestamp()) - 1)
    assert first["updated_before"] == str(math.ceil(TO.timestamp()))
    assert first["limit"] == "100"
    for name in (
        "items{",
        "buyer_details",
        "shipping_address",
        "estimated_payment_details",
        "selected_shipping_option",
        "channel",
        "merchant_order_id",
        "last_updated",
    ):
        assert name in first["fields"]
    assert all(url.host == "graph.test" and "access_token" not in url.params for url in seen)


async def test_empty_range_yields_one_final_page(graph: respx.MockRouter) -> None:
    orders_route(graph, lambda r: httpx.Response(200, json={"data": []}))
    pages = await collect(make_client().iter_orders(FROM, TO))
    assert len(pages) == 1 and pages[0].orders == [] and pages[0].resume_from == TO


async def test_cancellation_and_refund_filters_refine_completed_orders(
    graph: respx.MockRouter,
) -> None:
    route = orders_route(
        graph,
        lambda r: httpx.Response(
            200,
            json={
                "data": [
                    order("A", "COMPLETED"),
                    order("B", "COMPLETED"),
                    order("C", "COMPLETED"),
                    order("D", "IN_PROGRESS"),
                ]
            },
        ),
        flagged={"NO_SHIPMENTS": ["A", "D"], "HAS_REFUNDS": ["B"]},
    )
    pages = await collect(make_client().iter_orders(FROM, TO))
    status = {o.external_order_id: o.status for p in pages for o in p.orders}
    assert status == {
        "A": OrderStatus.CANCELLED,
        "B": OrderStatus.RETURNED,
        "C": OrderStatus.COMPLETED,
        "D": OrderStatus.PENDING,
    }
    scans = [c.request.url.params for c in route.calls if "filters" in c.request.url.params]
    assert sorted(s["filters"] for s in scans) == ["HAS_REFUNDS", "NO_SHIPMENTS"]
    assert all(s["state"] == "COMPLETED" and s["fields"] == "id" for s in scans)


async def test_paged_or_missing_inline_items_are_read_from_the_items_edge(
    graph: respx.MockRouter,
) -> None:
    paged = order("A")
    paged["items"]["paging"] = {"cursors": {"after": "I1"}, "next": "https://graph.test/x"}
    missing = order("B")
    del missing["items"]
    orders_route(graph, lambda r: httpx.Response(200, json={"data": [paged, missing]}))

    def items(order_id: str) -> Callable[[httpx.Request], httpx.Response]:
        def handler(request: httpx.Request) -> httpx.Response:
            assert "price_per_unit" in request.url.params["fields"]
            line = order(order_id)["items"]["data"][0]
            if request.url.params.get("after") is None:
                return httpx.Response(
                    200, json={"data": [line], "paging": {"cursors": {"after": "I1"}, "next": "x"}}
                )
            return httpx.Response(200, json={"data": [{**line, "id": "second", "quantity": 1}]})

        return handler

    graph.get("/A/items").mock(side_effect=items("A"))
    graph.get("/B/items").mock(side_effect=items("B"))
    pages = await collect(make_client().iter_orders(FROM, TO))
    by_id = {o.external_order_id: o for p in pages for o in p.orders}
    assert [i.quantity for i in by_id["A"].items] == [2, 1]
    assert [i.quantity for i in by_id["B"].items] == [2, 1]


async def test_one_unreadable_order_is_a_failure_not_a_crash(graph: respx.MockRouter) -> None:
    broken = order("BAD")
    broken["estimated_payment_details"]["total_amount"]["amount"] = "twelve"
    orders_route(graph, lambda r: httpx.Response(200, json={"data": [order("A"), broken]}))
    pages = await collect(make_client().iter_orders(FROM, TO))
    assert [o.external_order_id for o in pages[0].orders] == ["A"]
    assert [f.external_order_id for f in pages[0].failures] == ["BAD"]


async def test_get_orders_reads_each_order_and_its_edges_and_skips_unknown_ids(
    graph: respx.MockRouter,
) -> None:
    graph.get("/A").mock(return_value=httpx.Response(200, json=order("A", "COMPLETED")))
    graph.get("/A/shipments").mock(return_value=httpx.Response(200, json={"data": []}))
    graph.get("/A/refunds").mock(return_value=httpx.Response(200, json={"data": []}))
    graph.get("/B").mock(return_value=httpx.Response(200, json=order("B", "CREATED")))
    graph.get("/Z").mock(return_value=graph_error(400, 100, subcode=33))
    orders = await make_client().get_orders(["A", "B", "Z"])
    assert {o.external_order_id: o.status for o in orders} == {
        "A": OrderStatus.CANCELLED,
        "B": OrderStatus.PENDING,
    }


async def test_update_stock_posts_an_items_batch_and_reads_back_the_outcome(
    graph: respx.MockRouter,
) -> None:
    batch = graph.post(f"/{CATALOG}/items_batch").mock(
        return_value=httpx.Response(
            200,
            json={
                "handles": ["H1"],
                "validation_status": [
                    {"retailer_id": "SKU-1", "errors": [], "warnings": []},
                    {"retailer_id": "SKU-2", "errors": [{"message": "bad item"}], "warnings": []},
                    {"retailer_id": "SKU-3", "errors": [], "warnings": []},
                ],
            },
        )
    )
    status = graph.get(f"/{CATALOG}/check_batch_request_status").mock(
        return_value=httpx.Response(
            200,
            json={
                "data": [
                    {"handle": "H1", "status": "finished", "ids_of_invalid_requests": ["SKU-3"]}
                ]
            },
        )
    )
    results = await make_client().update_stock(
        [
            StockUpdate("SKU-1", 5),
            StockUpdate("SKU-2", 1),
            StockUpdate("SKU-3", 2),
            StockUpdate("SKU-4", -1),
        ]
    )
    assert [(r.sku, r.ok) for r in results] == [
        ("SKU-1", True),
        ("SKU-2", False),
        ("SKU-3", False),
        ("SKU-4", False),
    ]
    assert results[1].message == "bad item"
    form = parse_qs(batch.calls.last.request.content.decode())
    assert form["item_type"] == ["PRODUCT_ITEM"] and form["allow_upsert"] == ["false"]
    assert json.loads(form["requests"][0]) == [
        {"method": "UPDATE", "data": {"id": sku, "quantity_to_sell_on_facebook": qty}}
        for sku, qty in (("SKU-1", 5), ("SKU-2", 1), ("SKU-3", 2))
    ]
    params = status.calls.last.request.url.params
    assert params["handle"] == "H1" and params["load_ids_of_invalid_requests"] == "true"


# --- failures and retries ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("responses", "error", "attempts"),
    [
        ([graph_error(500, 2, is_transient=True)] * 2, None, 3),
        ([graph_error(503, 1)], None, 2),
        ([httpx.Response(502, text="<html>bad gateway</html>")], None, 2),
        ([httpx.Response(200, text="{not json")], None, 2),
        ([graph_error(400, 100, is_transient=True)], None, 2),
        ([graph_error(400, 4), graph_error(403, 17), graph_error(400, 32)], None, 4),
        ([graph_error(400, 613)], None, 2),
        ([graph_error(400, 80001)], None, 2),
        ([graph_error(400, 80004)], None, 2),
        ([httpx.Response(429, text="slow down")], None, 2),
        ([graph_error(400, 100)], PermanentError, 1),
        ([graph_error(403, 10)], PermanentError, 1),
        ([graph_error(403, 200)], PermanentError, 1),
        ([graph_error(403, 299)], PermanentError, 1),
        ([graph_error(400, 190, subcode=463)], ReauthRequiredError, 1),
        ([graph_error(400, 102)], ReauthRequiredError, 1),
        ([graph_error(500, 2)] * 4, TransientError, 4),
        ([graph_error(400, 32)] * 4, RateLimitedError, 4),
    ],
)
async def test_failures_are_classified_and_only_transient_or_rate_limited_are_retried(
    graph: respx.MockRouter,
    responses: list[httpx.Response],
    error: type[Exception] | None,
    attempts: int,
) -> None:
    ok = httpx.Response(200, json={"id": PAGE, "name": "Shop"})
    route = graph.get("/me").mock(side_effect=[*responses, ok])
    if error is None:
        assert (await make_client().check_shop()).name == "Shop"
    else:
        with pytest.raises(error):
            await make_client().check_shop()
    assert route.call_count == attempts


async def test_error_carries_platform_words_code_and_trace_id(graph: respx.MockRouter) -> None:
    graph.get("/me").mock(return_value=graph_error(400, 190, subcode=463))
    with pytest.raises(ReauthRequiredError) as caught:
        await make_client().check_shop()
    assert caught.value.code == "190/463"
    assert caught.value.request_id == "TRACE1"
    assert caught.value.message == "error 190"
    assert TOKEN not in str(caught.value) and SECRET not in str(caught.value)


async def test_locally_expired_token_needs_reauthorization_without_a_call(
    graph: respx.MockRouter,
) -> None:
    route = graph.get("/me").mock(return_value=httpx.Response(200, json={"id": PAGE}))
    client = make_client(expires=datetime.now(UTC) - timedelta(minutes=1))
    with pytest.raises(ReauthRequiredError):
        await client.check_shop()
    assert route.call_count == 0


class RecordingLimiter(RateLimiter):
    def __init__(self) -> None:
        super().__init__(10000)
        self.pauses: list[float] = []

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    import asyncio

    monkeypatch.setattr(
        http_module, "asyncio", types.SimpleNamespace(sleep=fake_sleep, Lock=asyncio.Lock)
    )
    return slept


def usage_header(minutes: int) -> dict[str, str]:
    entry = {
        "type": "pages",
        "call_count": 100,
        "total_cputime": 20,
        "total_time": 30,
        "estimated_time_to_regain_access": minutes,
    }
    return {"X-Business-Use-Case-Usage": json.dumps({PAGE: [entry]})}


async def test_usage_header_time_to_regain_access_sets_the_retry_delay(
    graph: respx.MockRouter, sleeps: list[float]
) -> None:
    limiter = RecordingLimiter()
    events: list[tuple[str, Any]] = []
    route = graph.get("/me").mock(
        side_effect=[
            graph_error(400, 32, headers=usage_header(3)),
            graph_error(400, 4, headers={"Retry-After": "7"}),
            httpx.Response(200, json={"id": PAGE, "name": "Shop"}),
        ]
    )
    client = make_client(limiter=limiter, events=lambda e, d: events.append((e, d)))
    assert (await client.check_shop()).name == "Shop"
    assert route.call_count == 3
    assert sleeps[:2] == [180.0, 7.0]
    assert limiter.pauses[:2] == [180.0, 7.0]
    assert [d["reason"] for e, d in events if e == "retry"] == ["rate_limited", "rate_limited"]


async def test_rate_limit_error_exposes_retry_after(
    graph: respx.MockRouter, sleeps: list[float]
) -> None:
    graph.get("/me").mock(return_value=graph_error(400, 80001, headers=usage_header(2)))
    with pytest.raises(RateLimitedError) as caught:
        await make_client(limiter=RecordingLimiter()).check_shop()
    assert caught.value.retry_after == 120.0
    assert len(sleeps) == 3  # max_attempts 4 -> three waits


async def test_usage_at_the_cap_on_success_pauses_the_connection(graph: respx.MockRouter) -> None:
    limiter = RecordingLimiter()
    graph.get("/me").mock(
        return_value=httpx.Response(200, json={"id": PAGE, "name": "x"}, headers=usage_header(1))
    )
    await make_client(limiter=limiter).check_shop()
    assert limiter.pauses == [60.0]
