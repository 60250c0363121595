"""Pushed orders read in bulk: `commerce_orders` by update window (Graph has no multi-id read
of orders), the window's cancelled and refunded ids only when one is completed, then one read
per id the window did not return (respx, calls counted)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import respx

from app.platforms.base import ReadHint
from app.platforms.types import OrderStatus
from tests.platforms.facebook import test_wire
from tests.platforms.facebook.test_wire import (
    CMS,
    graph_error,
    make_client,
    order,
    orders_route,
)

graph = test_wire.graph  # the respx router fixture

SINCE = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


async def test_pushed_orders_are_read_from_the_update_window_then_by_id(
    graph: respx.MockRouter,
) -> None:
    window = [order(f"W{n:03d}", "COMPLETED" if n == 3 else "CREATED") for n in range(150)]

    def listing(request: httpx.Request) -> httpx.Response:
        after = int(request.url.params.get("after") or 0)
        rows = window[after : after + 100]
        paging: dict = {"cursors": {"after": str(after + 100)}}
        if after + 100 < len(window):
            paging["next"] = "https://graph.test/next"
        return httpx.Response(200, json={"data": rows, "paging": paging})

    route = orders_route(graph, listing, flagged={"NO_SHIPMENTS": ["W003"], "HAS_REFUNDS": []})
    single = graph.get("/LATE").mock(return_value=httpx.Response(200, json=order("LATE")))
    gone = graph.get("/GONE").mock(return_value=graph_error(400, 100, subcode=33))
    wanted = [f"W{n:03d}" for n in range(0, 150, 2)] + ["W003", "LATE", "GONE"]

    read = await make_client().fetch_orders_by_ids(wanted, ReadHint(updated_since=SINCE))

    main = [c.request for c in route.calls if "filters" not in c.request.url.params]
    flags = [c.request for c in route.calls if "filters" in c.request.url.params]
    assert len(main) == 2  # two pages of the window
    params = dict(main[0].url.params)
    assert int(params["updated_after"]) == int(SINCE.timestamp()) - 1
    assert params["state"] == "FB_PROCESSING,CREATED,IN_PROGRESS,COMPLETED"
    assert "items{" in params["fields"]
    assert sorted(r.url.params["filters"] for r in flags) == ["HAS_REFUNDS", "NO_SHIPMENTS"]
    assert (single.call_count, gone.call_count) == (1, 1)
    by_id = {o.external_order_id: o for o in read.orders}
    assert set(by_id) == set(wanted) - {"GONE"}
    assert by_id["W003"].status is OrderStatus.CANCELLED
    assert read.failures == []


async def test_a_window_without_completed_orders_asks_for_no_flags(
    graph: respx.MockRouter,
) -> None:
    route = orders_route(
        graph, lambda r: httpx.Response(200, json={"data": [order("A"), order("B")]})
    )

    read = await make_client().fetch_orders_by_ids(["A", "B"], ReadHint(updated_since=SINCE))

    assert route.call_count == 1
    assert sorted(o.external_order_id for o in read.orders) == ["A", "B"]
    assert graph.calls.call_count == 2  # the commerce account lookup and one page


async def test_without_a_hint_each_order_is_read_by_id(graph: respx.MockRouter) -> None:
    route = graph.get(f"/{CMS}/commerce_orders").mock(return_value=httpx.Response(200, json={}))
    graph.get("/A").mock(return_value=httpx.Response(200, json=order("A")))

    read = await make_client().fetch_orders_by_ids(["A"])

    assert route.call_count == 0
    assert [o.external_order_id for o in read.orders] == ["A"]
