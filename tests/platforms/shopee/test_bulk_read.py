"""Pushed orders read in bulk: `get_order_detail` with 50 order numbers a call (respx)."""

from __future__ import annotations

import httpx
import respx

from tests.platforms.shopee import test_wire
from tests.platforms.shopee.test_wire import (
    envelope,
    error_body,
    fake_order,
    make_client,
    query,
)

mock = test_wire.mock  # the respx router fixture

DETAIL = "/api/v2/order/get_order_detail"


async def test_pushed_orders_are_read_fifty_a_call_and_unknown_ones_left_out(
    mock: respx.MockRouter,
) -> None:
    wanted = [f"SN{n:04d}" for n in range(120)]
    unknown = {"SN0007", "SN0099"}
    broken = "SN0050"

    def detail(request: httpx.Request) -> httpx.Response:
        sns = query(request)["order_sn_list"].split(",")
        assert len(sns) <= 50
        orders = [fake_order(sn, 1_767_225_600) for sn in sns if sn not in unknown]
        for order in orders:
            if order["order_sn"] == broken:
                order["total_amount"] = "lots"
        return httpx.Response(200, json=envelope({"order_list": orders}))

    route = mock.get(DETAIL).mock(side_effect=detail)

    read = await make_client().fetch_orders_by_ids([*wanted, wanted[0]])

    assert route.call_count == 3
    assert sorted(len(query(c.request)["order_sn_list"].split(",")) for c in route.calls) == [
        20,
        50,
        50,
    ]
    returned = {o.external_order_id for o in read.orders}
    assert returned == set(wanted) - unknown - {broken}
    # Unreadable is told apart from not returned (which a push retries).
    assert [f.external_order_id for f in read.failures] == [broken]


async def test_a_refused_batch_is_asked_order_by_order(mock: respx.MockRouter) -> None:
    def detail(request: httpx.Request) -> httpx.Response:
        sns = query(request)["order_sn_list"].split(",")
        if len(sns) > 1:
            return httpx.Response(200, json=error_body("error_param", "bad order_sn"))
        if sns == ["BAD"]:
            return httpx.Response(200, json=error_body("error_param", "bad order_sn"))
        return httpx.Response(200, json=envelope({"order_list": [fake_order(sns[0], 1)]}))

    route = mock.get(DETAIL).mock(side_effect=detail)

    read = await make_client().fetch_orders_by_ids(["A", "BAD", "C"])

    assert route.call_count == 4
    assert sorted(o.external_order_id for o in read.orders) == ["A", "C"]
    assert [f.external_order_id for f in read.failures] == ["BAD"]
