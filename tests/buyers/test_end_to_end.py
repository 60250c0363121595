"""Buyer data of orders synced from the sandboxes: masked in lists, exported by phone, erased
on a disconnect with eraseBuyerData=true."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.buyers.conftest import EXPORT
from tests.conftest import RunningSandbox, auth_headers
from tests.sync.conftest import connect_shop, sync

USER = "seller-1"


async def get(api: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await api.get(path, params={"userId": USER, **params}, headers=auth_headers(USER))
    assert response.status_code == 200, response.text
    return response.json()["data"]


@pytest.mark.parametrize("platform", ["shopee", "lazada", "facebook"])
async def test_synced_buyer_is_masked_exported_and_erased_on_disconnect(
    api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None, platform: str
) -> None:
    connection, _ = await connect_shop(api, sandbox, platform, order_count=4, days=10)
    assert (await sync(api, connection)).json()["data"]["status"] == "success"

    masked = await get(api, "/api/marketplace/orders")
    full = {o["id"]: o for o in await get(api, "/api/marketplace/orders", includeBuyer="true")}
    assert len(masked) == len(full) == 4
    for order in masked:
        whole = full[order["id"]]
        assert order["shippingAddress"]["line1"] == "****" != whole["shippingAddress"]["line1"]
        if whole["buyerPhone"] is not None:
            assert order["buyerPhone"] == "******" + whole["buyerPhone"][-4:]

    phone = next((o["buyerPhone"] for o in full.values() if o["buyerPhone"]), None)
    if phone is not None:  # Meta shares no phone number
        exported = await get(api, EXPORT, phone="0" + phone.removeprefix("+").removeprefix("66"))
        assert {o["buyerPhone"] for o in exported["orders"]} == {phone}
        assert all(o["raw"] for o in exported["orders"])

    response = await api.delete(
        f"/api/marketplace/connections/{connection['id']}",
        params={"eraseBuyerData": "true"},
        headers=auth_headers(USER),
    )
    assert response.status_code == 204, response.text
    for order_id, before in full.items():
        after = await get(api, f"/api/marketplace/orders/{order_id}")
        assert (after["buyerName"], after["buyerPhone"], after["shippingAddress"]) == (None,) * 3
        assert after["items"] == before["items"] and after["total"] == before["total"]
        phone_digits = "".join(c for c in before["buyerPhone"] or "" if c.isdigit())
        secrets = [before["buyerName"], phone_digits, before["buyerEmail"]]
        secrets.append(before["shippingAddress"]["line1"])
        raw = json.dumps(after["raw"], ensure_ascii=False)
        assert [s for s in secrets if s and s in raw] == []
