"""Bulk ship: 120 orders per platform, in the platforms' batches."""

from __future__ import annotations

import math

import httpx
import pytest

from tests.conftest import RunningSandbox
from tests.fulfillment.conftest import HEADERS, USER, open_shop, settled

COUNT = 120


def calls(sandbox: RunningSandbox, platform: str, path: str) -> int:
    if platform == "facebook":
        return sum(p.endswith(path) for p in sandbox.sandboxes.facebook.post_paths)
    count: int = getattr(sandbox.sandboxes, platform).calls[path]
    return count


@pytest.mark.parametrize("platform", ["shopee", "lazada", "facebook"])
async def test_bulk_of_120_ships_every_order_in_the_platforms_batches(
    api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None, platform: str
) -> None:
    shop = await open_shop(api, sandbox, platform, COUNT)
    ids = [o["id"] for o in shop.orders]
    paths = {
        "shopee": ["/api/v2/logistics/mass_ship_order", "/api/v2/logistics/ship_order"],
        "lazada": ["/order/fulfill/pack", "/order/package/rts"],
        "facebook": ["/shipments"],
    }[platform]
    before = [calls(sandbox, platform, p) for p in paths]
    body: dict[str, object] = {"userId": USER, "orderIds": ids, "method": "dropoff"}
    if platform == "facebook":
        body = {
            "userId": USER,
            "orderIds": ids,
            "method": "tracking",
            "carrier": "KERRY_EXPRESS_THAILAND",
            "trackingNumbers": {str(i): f"KEX{i:08d}" for i in ids},
        }
    response = await api.post("/api/marketplace/fulfillments", json=body, headers=HEADERS)
    assert response.status_code == 202, response.text
    answered = response.json()["data"]
    assert [f["orderId"] for f in answered] == ids
    done = await settled(api, {f["id"] for f in answered}, timeout=60)
    assert [f["status"] for f in done.values()].count("shipped") == COUNT
    made = [calls(sandbox, platform, p) - b for p, b in zip(paths, before, strict=True)]
    if platform == "shopee":
        assert made[0] <= math.ceil(COUNT / 50) and made[1] == 0
    elif platform == "lazada":
        assert made[0] <= math.ceil(COUNT / 20) and made[1] <= math.ceil(COUNT / 20)
    else:
        assert made[0] == COUNT  # Meta: one shipment per order


async def test_bulk_answers_a_failed_fulfillment_for_an_order_that_cannot_ship(
    api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None
) -> None:
    shop = await open_shop(api, sandbox, "shopee", 2)
    first = shop.orders[0]["id"]
    one = await api.post(
        f"/api/marketplace/orders/{first}/ship",
        json={"userId": USER, "method": "dropoff"},
        headers=HEADERS,
    )
    await settled(api, {one.json()["data"]["id"]})
    # The first is shipped on the platform; the second ships now; a bulk of 501 is refused.
    too_many = await api.post(
        "/api/marketplace/fulfillments",
        json={"userId": USER, "orderIds": list(range(1, 502)), "method": "dropoff"},
        headers=HEADERS,
    )
    assert too_many.status_code == 422
    response = await api.post(
        "/api/marketplace/fulfillments",
        json={"userId": USER, "orderIds": [o["id"] for o in shop.orders], "method": "dropoff"},
        headers=HEADERS,
    )
    answered = response.json()["data"]
    done = await settled(api, {f["id"] for f in answered})
    by_order = {f["orderId"]: f for f in done.values()}
    assert by_order[first]["status"] == "failed"
    assert by_order[first]["message"].startswith("Already shipped")
    assert by_order[shop.orders[1]["id"]]["status"] == "shipped"


async def test_fulfillments_are_listed_newest_first_by_cursor_and_filtered(
    api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None
) -> None:
    shop = await open_shop(api, sandbox, "shopee", 7)
    ids = [o["id"] for o in shop.orders]
    body = {"userId": USER, "orderIds": ids, "method": "dropoff"}
    response = await api.post("/api/marketplace/fulfillments", json=body, headers=HEADERS)
    answered = response.json()["data"]
    await settled(api, {f["id"] for f in answered})
    seen: list[dict[str, object]] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, object] = {"userId": USER, "limit": 3, "status": "shipped"}
        if cursor:
            params["cursor"] = cursor
        page = (
            await api.get("/api/marketplace/fulfillments", params=params, headers=HEADERS)
        ).json()
        seen += page["data"]
        pages += 1
        cursor = page["pagination"]["nextCursor"]
        if not cursor:
            break
    assert pages == 3 and len(seen) == 7
    assert {f["id"] for f in seen} == {f["id"] for f in answered}
    stamps = [(f["createdAt"], f["id"]) for f in seen]
    assert stamps == sorted(stamps, reverse=True)
    one = await api.get(
        "/api/marketplace/fulfillments",
        params={"userId": USER, "orderId": ids[3]},
        headers=HEADERS,
    )
    assert [f["orderId"] for f in one.json()["data"]] == [ids[3]]
    none = await api.get(
        "/api/marketplace/fulfillments",
        params={"userId": USER, "status": "failed"},
        headers=HEADERS,
    )
    assert none.json()["data"] == []
    bad = await api.get(
        "/api/marketplace/fulfillments",
        params={"userId": USER, "cursor": "not-a-cursor"},
        headers=HEADERS,
    )
    assert bad.status_code == 422
