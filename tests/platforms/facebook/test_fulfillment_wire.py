"""Meta shipments and cancellations on the wire (respx)."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import httpx
import respx

from app.platforms.fulfillment import ShipRequest, ShipTarget
from tests.platforms.facebook.test_wire import BASE, make_client


@respx.mock
async def test_shipment_carries_tracking_info_and_the_idempotency_key() -> None:
    route = respx.post(f"{BASE}/ORDER1/shipments").mock(
        return_value=httpx.Response(200, json={"success": True})
    )
    async with make_client() as client:
        (result,) = await client.ship(
            [ShipTarget("ORDER1", tracking_number="TH123", carrier="flash", idempotency_key="k1")],
            ShipRequest("tracking"),
        )
    form = dict(parse_qsl(route.calls[0].request.content.decode()))
    assert form["idempotency_key"] == "k1"
    assert json.loads(form["tracking_info"]) == {"tracking_number": "TH123", "carrier": "OTHER"}
    assert result.ok and result.carrier == "OTHER"


@respx.mock
async def test_cancellation_sends_the_reason_code() -> None:
    route = respx.post(f"{BASE}/ORDER1/cancellations").mock(
        return_value=httpx.Response(200, json={"success": True})
    )
    async with make_client() as client:
        await client.cancel_order(ShipTarget("ORDER1", idempotency_key="k2"), "OUT_OF_STOCK")
    form = dict(parse_qsl(route.calls[0].request.content.decode()))
    assert json.loads(form["cancel_reason"]) == {"reason_code": "OUT_OF_STOCK"}
    assert form["idempotency_key"] == "k2"
