"""TikTok Shop ship calls on the wire: Batch Ship Packages with a handover (pickup with a slot,
drop-off) or self-shipment per package; a package refused in `data.errors[]` is reported as
such, the others shipped."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from app.platforms.fulfillment import ShipRequest, ShipTarget
from tests.platforms.tiktok.test_wire import API, SHOPS, envelope, make_client

ORDER = {"id": "5001", "status": "AWAITING_SHIPMENT", "packages": [{"id": "PK1"}]}


@pytest.mark.parametrize(
    ("request_", "target", "body"),
    [
        (
            ShipRequest("pickup", pickup_time_id="1700000000-1700014400"),
            ShipTarget("5001"),
            {
                "handover_method": "PICKUP",
                "pickup_slot": {"start_time": 1700000000, "end_time": 1700014400},
            },
        ),
        (ShipRequest("dropoff"), ShipTarget("5001"), {"handover_method": "DROP_OFF"}),
        (
            ShipRequest("tracking"),
            ShipTarget("5001", tracking_number="TH123", carrier="6617675021119438849"),
            {
                "self_shipment": {
                    "tracking_number": "TH123",
                    "shipping_provider_id": "6617675021119438849",
                }
            },
        ),
    ],
)
@respx.mock
async def test_ship_body_per_method(
    request_: ShipRequest, target: ShipTarget, body: dict[str, Any]
) -> None:
    client, _ = make_client()
    respx.get(f"{API}/authorization/202309/shops").respond(json=SHOPS)
    respx.get(f"{API}/order/202309/orders").respond(json=envelope({"orders": [ORDER]}))
    ship = respx.post(f"{API}/fulfillment/202309/packages/ship").respond(json=envelope({}))
    [result] = await client.ship([target], request_)
    await client.aclose()
    assert result.ok and result.package_id == "PK1"
    assert json.loads(ship.calls.last.request.content) == {"packages": [{"id": "PK1", **body}]}


@respx.mock
async def test_already_shipped_package_is_reported_as_shipped_before() -> None:
    client, _ = make_client()
    respx.get(f"{API}/authorization/202309/shops").respond(json=SHOPS)
    respx.get(f"{API}/order/202309/orders").respond(json=envelope({"orders": [ORDER]}))
    respx.post(f"{API}/fulfillment/202309/packages/ship").mock(
        return_value=httpx.Response(200, json=envelope(None, 21011040, "already shipped"))
    )
    [result] = await client.ship([ShipTarget("5001")], ShipRequest("dropoff"))
    await client.aclose()
    assert (result.ok, result.already_shipped) == (False, True)


@respx.mock
async def test_many_packages_ship_in_batches_and_per_package_refusals_are_kept_apart() -> None:
    client, _ = make_client()
    orders = [
        {"id": str(6000 + n), "status": "AWAITING_SHIPMENT", "packages": [{"id": f"PK{n}"}]}
        for n in range(120)
    ]
    respx.get(f"{API}/authorization/202309/shops").respond(json=SHOPS)
    respx.get(f"{API}/order/202309/orders").mock(
        side_effect=lambda request: httpx.Response(
            200,
            json=envelope(
                {"orders": [o for o in orders if o["id"] in request.url.params["ids"].split(",")]}
            ),
        )
    )
    refusal = {"code": 21011041, "message": "cancelled", "detail": {"package_id": "PK7"}}
    ship = respx.post(f"{API}/fulfillment/202309/packages/ship").mock(
        side_effect=lambda request: httpx.Response(
            200,
            json=envelope(
                {"errors": [refusal]}
                if any(p["id"] == "PK7" for p in json.loads(request.content)["packages"])
                else {}
            ),
        )
    )
    results = await client.ship([ShipTarget(o["id"]) for o in orders], ShipRequest("dropoff"))
    await client.aclose()
    assert [len(json.loads(c.request.content)["packages"]) for c in ship.calls] == [50, 50, 20]
    assert [r.external_order_id for r in results if not r.ok] == ["6007"]
    assert sum(r.ok for r in results) == 119
