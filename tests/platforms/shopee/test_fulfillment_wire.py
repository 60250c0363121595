"""Shopee logistics calls on the wire (respx): bodies, batching and refusals."""

from __future__ import annotations

import json

import httpx
import respx

from app.platforms.fulfillment import ShipRequest, ShipTarget
from tests.platforms.shopee.test_wire import BASE, make_client

OK: dict[str, object] = {"error": "", "message": "", "request_id": "r1"}


def body_of(route: respx.Route, n: int = 0) -> dict[str, object]:
    content = route.calls[n].request.content
    parsed: dict[str, object] = json.loads(content)
    return parsed


@respx.mock
async def test_ship_order_sends_one_method_object_and_the_package_number() -> None:
    route = respx.post(f"{BASE}/api/v2/logistics/ship_order").mock(
        return_value=httpx.Response(200, json=OK)
    )
    async with make_client() as client:
        results = await client.ship(
            [ShipTarget("SN1", package_number="OFG1")],
            ShipRequest("pickup", address_id="200", pickup_time_id="1639472400"),
        )
    assert results[0].ok
    assert body_of(route) == {
        "order_sn": "SN1",
        "package_number": "OFG1",
        "pickup": {"address_id": 200, "pickup_time_id": "1639472400"},
    }


@respx.mock
async def test_dropoff_sends_an_empty_object() -> None:
    route = respx.post(f"{BASE}/api/v2/logistics/ship_order").mock(
        return_value=httpx.Response(200, json=OK)
    )
    async with make_client() as client:
        await client.ship([ShipTarget("SN1")], ShipRequest("dropoff"))
    assert body_of(route) == {"order_sn": "SN1", "dropoff": {}}


@respx.mock
async def test_package_already_shipped_is_shown_as_already_shipped() -> None:
    respx.post(f"{BASE}/api/v2/logistics/ship_order").mock(
        return_value=httpx.Response(
            200,
            json={
                "error": "logistics.package_already_shipped",
                "message": "Package has been shipped.",
                "request_id": "r2",
            },
        )
    )
    async with make_client() as client:
        (result,) = await client.ship([ShipTarget("SN1")], ShipRequest("dropoff"))
    assert not result.ok and result.already_shipped
    assert result.message == "Already shipped: Package has been shipped."


@respx.mock
async def test_mass_ship_takes_fifty_packages_per_call_by_channel() -> None:
    sns = [f"SN{i:03d}" for i in range(120)]

    def detail(request: httpx.Request) -> httpx.Response:
        asked = request.url.params["order_sn_list"].split(",")
        assert len(asked) <= 50
        assert request.url.params["response_optional_fields"] == "package_list"
        orders = [
            {
                "order_sn": sn,
                "package_list": [{"package_number": f"P-{sn}", "logistics_channel_id": 70021}],
            }
            for sn in asked
        ]
        return httpx.Response(200, json={**OK, "response": {"order_list": orders}})

    def mass(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        packages = [p["package_number"] for p in body["package_list"]]
        assert body["logistics_channel_id"] == 70021 and body["dropoff"] == {}
        fail = [{"package_number": "P-SN007", "fail_reason": "logistics.error_order_state"}]
        success = [{"package_number": p} for p in packages if p != "P-SN007"]
        listed = fail if "P-SN007" in packages else []
        answer = {"success_list": success, "fail_list": listed}
        return httpx.Response(200, json={**OK, "response": answer})

    respx.get(f"{BASE}/api/v2/order/get_order_detail").mock(side_effect=detail)
    route = respx.post(f"{BASE}/api/v2/logistics/mass_ship_order").mock(side_effect=mass)
    async with make_client() as client:
        results = await client.ship([ShipTarget(sn) for sn in sns], ShipRequest("dropoff"))
    assert route.call_count == 3  # ceil(120 / 50)
    assert [len(body_of(route, n)["package_list"]) for n in range(3)] == [50, 50, 20]  # type: ignore[arg-type]
    assert sum(r.ok for r in results) == 119
    assert results[7].message == "logistics.error_order_state"


@respx.mock
async def test_label_is_created_polled_and_downloaded_as_pdf() -> None:
    created = respx.post(f"{BASE}/api/v2/logistics/create_shipping_document").mock(
        return_value=httpx.Response(
            200, json={**OK, "response": {"result_list": [{"order_sn": "SN1"}]}}
        )
    )
    respx.post(f"{BASE}/api/v2/logistics/get_shipping_document_result").mock(
        return_value=httpx.Response(
            200, json={**OK, "response": {"result_list": [{"order_sn": "SN1", "status": "READY"}]}}
        )
    )
    respx.post(f"{BASE}/api/v2/logistics/download_shipping_document").mock(
        return_value=httpx.Response(
            200, content=b"%PDF-1.4 label", headers={"content-type": "application/pdf"}
        )
    )
    async with make_client() as client:
        (label,) = await client.labels([ShipTarget("SN1", tracking_number="TH1")], "a6")
    assert label.ready and label.pdf == b"%PDF-1.4 label"
    sent = body_of(created)["order_list"]
    assert sent == [
        {
            "order_sn": "SN1",
            "shipping_document_type": "THERMAL_AIR_WAYBILL",
            "tracking_number": "TH1",
        }
    ]


@respx.mock
async def test_cancel_and_buyer_cancellation_bodies() -> None:
    cancel = respx.post(f"{BASE}/api/v2/order/cancel_order").mock(
        return_value=httpx.Response(200, json={**OK, "response": {"update_time": 1}})
    )
    answer = respx.post(f"{BASE}/api/v2/order/handle_buyer_cancellation").mock(
        return_value=httpx.Response(200, json={**OK, "response": {"update_time": 1}})
    )
    async with make_client() as client:
        await client.cancel_order(ShipTarget("SN1"), "CUSTOMER_REQUEST")
        await client.answer_cancellation(ShipTarget("SN1"), accept=False)
    assert body_of(cancel) == {"order_sn": "SN1", "cancel_reason": "CUSTOMER_REQUEST"}
    assert body_of(answer) == {"order_sn": "SN1", "operation": "REJECT"}


@respx.mock
async def test_empty_tracking_number_reads_as_none() -> None:
    respx.get(f"{BASE}/api/v2/logistics/get_tracking_number").mock(
        return_value=httpx.Response(200, json={**OK, "response": {"tracking_number": ""}})
    )
    async with make_client() as client:
        assert await client.tracking_number(ShipTarget("SN1")) is None
