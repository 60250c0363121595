"""Lazada pack / ready-to-ship / document calls on the wire (respx)."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qsl

import httpx
import respx

from app.platforms.fulfillment import ShipRequest, ShipTarget
from tests.platforms.lazada.test_wire import API, assert_signed, make_client, ok


def form(request: httpx.Request) -> dict[str, str]:
    return dict(parse_qsl(request.content.decode()))


def item_rows(order_ids: list[str], status: str = "pending") -> list[dict[str, Any]]:
    return [
        {
            "order_id": int(o),
            "order_number": int(o),
            "order_items": [{"order_item_id": int(o) * 10, "status": status, "package_id": ""}],
        }
        for o in order_ids
    ]


@respx.mock
async def test_pack_then_rts_in_twenties_and_a_failed_item_under_success_true_fails() -> None:
    ids = [str(1000 + i) for i in range(45)]

    def items(request: httpx.Request) -> httpx.Response:
        asked = json.loads(request.url.params["order_ids"])
        return ok(item_rows([str(a) for a in asked]))

    def pack(request: httpx.Request) -> httpx.Response:
        assert_signed(request, "/order/fulfill/pack")
        body = json.loads(form(request)["packReq"])
        assert body["delivery_type"] == "dropship" and body["shipping_allocate_type"] == "TFS"
        assert len(body["pack_order_list"]) <= 20
        listed = []
        for entry in body["pack_order_list"]:
            order_id = entry["order_id"]
            bad = order_id == 1003
            listed.append(
                {
                    "order_id": order_id,
                    "order_item_list": [
                        {
                            "order_item_id": i,
                            "item_err_code": "700026" if bad else "0",
                            "msg": "FO_ITEM_NOT_ALLOW_TO_PACK" if bad else "",
                            "package_id": f"FP{order_id}",
                            "tracking_number": f"TH{order_id}",
                            "shipment_provider": "Flash Express",
                        }
                        for i in entry["order_item_list"]
                    ],
                }
            )
        return httpx.Response(
            200,
            json={"code": "0", "result": {"success": True, "data": {"pack_order_list": listed}}},
        )

    def rts(request: httpx.Request) -> httpx.Response:
        body = json.loads(form(request)["readyToShipReq"])
        assert len(body["packages"]) <= 20
        packages = [{"package_id": p["package_id"], "item_err_code": "0"} for p in body["packages"]]
        return httpx.Response(
            200, json={"code": "0", "result": {"success": True, "data": {"packages": packages}}}
        )

    respx.get(f"{API}/orders/items/get").mock(side_effect=items)
    packs = respx.post(f"{API}/order/fulfill/pack").mock(side_effect=pack)
    ready = respx.post(f"{API}/order/package/rts").mock(side_effect=rts)
    client, _ = make_client()
    async with client:
        results = await client.ship([ShipTarget(i) for i in ids], ShipRequest("dropoff"))
    assert packs.call_count == 3 and ready.call_count == 3  # 20 + 20 + 5 (44 packages to RTS)
    assert [r.ok for r in results].count(False) == 1
    assert results[3].message == "FO_ITEM_NOT_ALLOW_TO_PACK"
    assert results[0].package_id == "FP1000" and results[0].tracking_number == "TH1000"
    assert results[0].carrier == "Flash Express"


@respx.mock
async def test_document_is_base64_pdf_per_package() -> None:
    respx.get(f"{API}/orders/items/get").mock(
        return_value=ok(
            [
                {
                    "order_id": 7,
                    "order_items": [
                        {"order_item_id": 70, "status": "ready_to_ship", "package_id": "FP7"}
                    ],
                }
            ]
        )
    )
    route = respx.get(f"{API}/order/package/document/get").mock(
        return_value=ok({"file": base64.b64encode(b"%PDF-1.4 x").decode(), "doc_type": "PDF"})
    )
    client, _ = make_client()
    async with client:
        (label,) = await client.labels([ShipTarget("7")], "a6")
    assert label.ready and label.pdf == b"%PDF-1.4 x"
    assert json.loads(route.calls[0].request.url.params["getDocumentReq"]) == {
        "doc_type": "PDF",
        "packages": [{"package_id": "FP7"}],
    }


@respx.mock
async def test_cancel_reasons_come_from_validate_and_cancel_sends_the_reason_id() -> None:
    respx.get(f"{API}/orders/items/get").mock(
        return_value=ok(
            [{"order_id": 7, "order_items": [{"order_item_id": 70, "status": "pending"}]}]
        )
    )
    respx.get(f"{API}/order/reverse/cancel/validate").mock(
        return_value=ok(
            {"reason_options": [{"reason_id": 10000021, "reason_name": "Out of Stock"}]}
        )
    )
    create = respx.get(f"{API}/order/reverse/cancel/create").mock(return_value=ok({}))
    client, _ = make_client()
    async with client:
        reasons = await client.cancel_reasons(ShipTarget("7"))
        await client.cancel_order(ShipTarget("7"), "10000021")
    assert [(r.code, r.name) for r in reasons] == [("10000021", "Out of Stock")]
    params = create.calls[0].request.url.params
    assert params["reason_id"] == "10000021" and params["order_item_id_list"] == "[70]"
