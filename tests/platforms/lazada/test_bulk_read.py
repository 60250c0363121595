"""Pushed orders read in bulk as the sync reads them: `/orders/get` by update window, items
50 orders a call, `/order/get` only for what the window did not return (respx, calls counted)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import httpx
import respx

from app.platforms.base import ReadHint
from tests.platforms.lazada.test_wire import API, lz_error, make_client, ok, order, unit

BASE = datetime(2024, 3, 1, 3, 0, tzinfo=UTC)
BANGKOK = timezone(timedelta(hours=7))


def listed(n: int) -> dict:
    """Order 1000+n, updated n seconds after BASE (Lazada's local-time text)."""
    local = (BASE + timedelta(seconds=n)).astimezone(BANGKOK)
    return order(1000 + n, local.strftime("%Y-%m-%d %H:%M:%S +0700"))


@respx.mock
async def test_pushed_orders_are_read_by_update_window_then_items_in_fifties() -> None:
    window = [listed(n) for n in range(130)]  # 115 pushed ones among 15 others
    pushed = [str(1000 + n) for n in range(130) if n % 9 != 0]
    outside = ["5001", "5002", "5003"]  # updated before the window
    unknown = ["9901", "9902"]

    def orders_page(request: httpx.Request) -> httpx.Response:
        params = request.url.params
        offset, limit = int(params["offset"]), int(params["limit"])
        rows = window[offset : offset + limit]
        return ok({"count": len(rows), "countTotal": len(window), "orders": rows})

    def one(request: httpx.Request) -> httpx.Response:
        order_id = request.url.params["order_id"]
        if order_id in unknown:
            return lz_error("E016", "Invalid Order ID")
        return ok(order(int(order_id), "2024-02-01 10:00:00 +0700"))

    def items(request: httpx.Request) -> httpx.Response:
        ids = request.url.params["order_ids"].strip("[]").split(",")
        assert len(ids) <= 50
        return ok([{"order_id": int(i), "order_items": [unit(int(i), 1, "A", 10)]} for i in ids])

    lists = respx.get(f"{API}/orders/get").mock(side_effect=orders_page)
    singles = respx.get(f"{API}/order/get").mock(side_effect=one)
    batches = respx.get(f"{API}/orders/items/get").mock(side_effect=items)
    client, _ = make_client()

    read = await client.fetch_orders_by_ids(
        [*pushed, *outside, *unknown, pushed[0]], ReadHint(updated_since=BASE)
    )

    assert lists.call_count == 2  # 100 + the 30 left (the follow-up starts one row early)
    first = dict(lists.calls[0].request.url.params)
    assert first["update_after"] == "2024-03-01T03:00:00+00:00"
    assert (first["status"], first["sort_by"], first["sort_direction"]) == (
        "all",
        "updated_at",
        "ASC",
    )
    assert singles.call_count == len(outside) + len(unknown)
    found = len(pushed) + len(outside)
    assert batches.call_count == -(-found // 50)
    assert sorted(o.external_order_id for o in read.orders) == sorted([*pushed, *outside])
    assert read.failures == []


@respx.mock
async def test_the_window_stops_once_reading_by_id_would_cost_no_more() -> None:
    crowd = [listed(n) for n in range(100)]  # a busy window that holds none of them

    respx.get(f"{API}/orders/get").mock(
        return_value=ok({"count": 100, "countTotal": 5000, "orders": crowd})
    )
    singles = respx.get(f"{API}/order/get").mock(
        side_effect=lambda r: ok(order(int(r.url.params["order_id"]), "2024-03-02 10:00:00 +0700"))
    )
    respx.get(f"{API}/orders/items/get").mock(
        side_effect=lambda r: ok(
            [
                {"order_id": int(i), "order_items": [unit(int(i), 1, "A", 1)]}
                for i in r.url.params["order_ids"].strip("[]").split(",")
            ]
        )
    )
    client, _ = make_client()

    read = await client.fetch_orders_by_ids(["7001"], ReadHint(updated_since=BASE))

    assert respx.calls.call_count == 3  # one page, one /order/get, one items call
    assert singles.call_count == 1
    assert [o.external_order_id for o in read.orders] == ["7001"]


@respx.mock
async def test_without_a_hint_each_order_is_read_by_id() -> None:
    lists = respx.get(f"{API}/orders/get").mock(return_value=ok({"orders": []}))
    singles = respx.get(f"{API}/order/get").mock(
        side_effect=lambda r: ok(order(int(r.url.params["order_id"]), "2024-03-02 10:00:00 +0700"))
    )
    respx.get(f"{API}/orders/items/get").mock(return_value=ok([{"order_id": 8, "order_items": []}]))
    client, _ = make_client()

    read = await client.fetch_orders_by_ids(["8"])

    assert (lists.call_count, singles.call_count) == (0, 1)
    assert read.orders == []
    assert [f.external_order_id for f in read.failures] == ["8"]  # returned, but no items
