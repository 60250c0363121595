"""Ship one order on every platform, against the sandboxes, through a real worker."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import OrderFulfillment
from tests.conftest import RunningSandbox
from tests.fulfillment.conftest import (
    SHIP_BODY,
    control,
    open_shop,
    order,
    settled,
    ship,
    sync,
)

PLATFORMS = ("shopee", "lazada", "facebook", "tiktok")
SHIP_CALLS = {
    "shopee": ("/api/v2/logistics/ship_order", "/api/v2/logistics/mass_ship_order"),
    "lazada": ("/order/fulfill/pack", "/order/package/rts"),
}


def _tiktok_ship_calls(sandbox: RunningSandbox) -> int:
    calls = sandbox.sandboxes.tiktok.calls
    return sum(n for path, n in calls.items() if path.endswith("/ship"))


def ship_calls(sandbox: RunningSandbox, platform: str) -> int:
    if platform == "facebook":
        return sum(p.endswith("/shipments") for p in sandbox.sandboxes.facebook.post_paths)
    if platform == "tiktok":
        return _tiktok_ship_calls(sandbox)
    state = getattr(sandbox.sandboxes, platform)
    return sum(state.calls[path] for path in SHIP_CALLS[platform])


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_ship_once_and_the_same_key_again_ships_nothing_twice(
    api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None, platform: str
) -> None:
    shop = await open_shop(api, sandbox, platform, 1)
    order_id = shop.orders[0]["id"]
    before = ship_calls(sandbox, platform)
    first = await ship(api, order_id, "key-1", **SHIP_BODY[platform])
    assert first.status_code == 202, first.text
    fulfillment = first.json()["data"]
    assert fulfillment["status"] == "requested" and fulfillment["orderId"] == order_id
    done = (await settled(api, {fulfillment["id"]}, tracking=True))[fulfillment["id"]]
    assert done["status"] == "shipped", done
    assert done["trackingNumber"]
    calls = ship_calls(sandbox, platform)
    assert calls > before
    again = await ship(api, order_id, "key-1", **SHIP_BODY[platform])
    assert again.status_code == 202
    assert again.json()["data"]["id"] == fulfillment["id"]
    assert again.json()["data"]["status"] == "shipped"
    await settled(api, {fulfillment["id"]})
    assert ship_calls(sandbox, platform) == calls
    shown = (await order(api, order_id))["fulfillment"]
    assert shown["status"] == "shipped" and shown["trackingNumber"] == done["trackingNumber"]
    assert shown["shippedAt"] is not None


async def test_shopee_tracking_number_is_read_again_until_it_appears(
    api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None
) -> None:
    shop = await open_shop(api, sandbox, "shopee", 1)
    await control(
        sandbox,
        "shopee",
        "fulfillment",
        {"shopId": shop.credentials["shopId"], "trackingHiddenReads": 2},
    )
    reads = sandbox.sandboxes.shopee.calls["/api/v2/logistics/get_tracking_number"]
    response = await ship(api, shop.orders[0]["id"], "k", method="dropoff")
    fid = response.json()["data"]["id"]
    done = (await settled(api, {fid}, tracking=True))[fid]
    assert done["trackingNumber"].startswith("TH")
    # Empty twice, then the number: three reads, each after the retry interval.
    assert sandbox.sandboxes.shopee.calls["/api/v2/logistics/get_tracking_number"] - reads == 3


async def test_a_second_ship_while_one_runs_is_409(
    api: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    shop = await open_shop_without_worker(api, sandbox)
    order_id = shop.orders[0]["id"]
    first = await ship(api, order_id, "a", method="dropoff")
    assert first.status_code == 202
    second = await ship(api, order_id, "b", method="dropoff")
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "fulfillment_running"
    assert second.json()["error"]["fulfillmentId"] == first.json()["data"]["id"]


async def open_shop_without_worker(api: httpx.AsyncClient, sandbox: RunningSandbox):  # type: ignore[no-untyped-def]
    from tests.conftest import running_worker

    settings = api.app.state.settings  # type: ignore[attr-defined]
    async with running_worker(settings):
        return await open_shop(api, sandbox, "shopee", 1)


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_an_order_that_cannot_ship_is_409_naming_its_status(
    api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None, platform: str
) -> None:
    shop = await open_shop(api, sandbox, platform, 1)
    await control(
        sandbox,
        platform,
        "orders/change",
        {
            "shopId": shop.credentials["shopId"],
            "orderIds": [shop.orders[0]["externalOrderId"]],
            "status": "cancelled",
        },
    )
    # The change is stamped a second after the placing: let that second pass, then sync.
    await asyncio.sleep(1.1)
    await sync(api, shop)
    response = await ship(api, shop.orders[0]["id"], "k", **SHIP_BODY[platform])
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "not_shippable" and error["status"] == "cancelled"
    assert "cancelled" in error["message"]


REFUSALS = {
    "shopee": "The order status is not ready to ship.",
    "lazada": "Items are canceled",  # Lazada's item status, read before packing
    "facebook": "cannot be shipped",
    "tiktok": "The order has been cancelled",  # 21011041
}


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_a_platform_refusal_fails_the_fulfillment_with_the_platforms_words(
    api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None, platform: str
) -> None:
    shop = await open_shop(api, sandbox, platform, 1)
    # Cancelled on the platform, not yet synced here: this service still sees it pending.
    await control(
        sandbox,
        platform,
        "orders/change",
        {
            "shopId": shop.credentials["shopId"],
            "orderIds": [shop.orders[0]["externalOrderId"]],
            "status": "cancelled",
        },
    )
    response = await ship(api, shop.orders[0]["id"], "k", **SHIP_BODY[platform])
    assert response.status_code == 202
    fid = response.json()["data"]["id"]
    done = (await settled(api, {fid}))[fid]
    assert done["status"] == "failed"
    assert REFUSALS[platform] in done["message"]


async def test_shopee_already_shipped_is_shown_as_already_shipped(
    api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None
) -> None:
    shop = await open_shop(api, sandbox, "shopee", 1)
    order_id = shop.orders[0]["id"]
    first = (await ship(api, order_id, "a", method="dropoff")).json()["data"]
    await settled(api, {first["id"]})
    second = (await ship(api, order_id, "b", method="dropoff")).json()["data"]
    done = (await settled(api, {second["id"]}))[second["id"]]
    assert done["status"] == "failed"
    assert done["message"] == "Already shipped: Package has been shipped."


async def test_shopee_split_order_ships_package_by_package(
    api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None
) -> None:
    shop = await open_shop(api, sandbox, "shopee", 1, lines=2, split=2)
    order_id = shop.orders[0]["id"]
    whole = (await ship(api, order_id, "whole", method="dropoff")).json()["data"]
    refused = (await settled(api, {whole["id"]}))[whole["id"]]
    assert refused["status"] == "failed"
    assert refused["message"] == "Please request with package_number for this split order"
    external = shop.orders[0]["externalOrderId"]
    ids = set()
    for n in (1, 2):
        package = f"OFG{int(external[6:], 36)}-{n}"
        response = await ship(api, order_id, f"p{n}", method="dropoff", packageNumber=package)
        assert response.status_code == 202, response.text
        ids.add(response.json()["data"]["id"])
    done = await settled(api, ids)
    assert {f["status"] for f in done.values()} == {"shipped"}
    assert {f["packageNumber"] for f in done.values()} == {
        f"OFG{int(external[6:], 36)}-1",
        f"OFG{int(external[6:], 36)}-2",
    }


async def test_bad_method_for_the_platform_is_422_naming_the_field(
    api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None
) -> None:
    shop = await open_shop(api, sandbox, "lazada", 1)
    response = await ship(api, shop.orders[0]["id"], "k", method="tracking", trackingNumber="X")
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "method"


async def test_the_same_key_sent_twice_at_once_makes_one_fulfillment(
    api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None
) -> None:
    shop = await open_shop(api, sandbox, "shopee", 1)
    order_id = shop.orders[0]["id"]
    before = sandbox.sandboxes.shopee.calls["/api/v2/logistics/ship_order"]
    answers = await asyncio.gather(
        *(ship(api, order_id, "same", method="dropoff") for _ in range(4))
    )
    assert {a.status_code for a in answers} == {202}
    ids = {a.json()["data"]["id"] for a in answers}
    assert len(ids) == 1
    await settled(api, ids)
    assert sandbox.sandboxes.shopee.calls["/api/v2/logistics/ship_order"] - before == 1


async def test_a_ship_that_meets_server_errors_is_retried_by_a_later_job(
    api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None
) -> None:
    shop = await open_shop(api, sandbox, "shopee", 1)
    path = "/api/v2/logistics/ship_order"
    before = sandbox.sandboxes.shopee.calls[path]
    # More 5xx than one job's transport attempts (8): the job gives the ship back, a later
    # job (after the retry policy's delay) ships it.
    sandbox.sandboxes.shopee.faults.fail_next_server_error = 10
    response = await ship(api, shop.orders[0]["id"], "k", method="dropoff")
    fid = response.json()["data"]["id"]
    done = (await settled(api, {fid}))[fid]
    assert done["status"] == "shipped", done
    assert sandbox.sandboxes.shopee.calls[path] - before == 11


async def test_shopee_pickup_uses_an_address_and_slot_from_shipping_options(
    api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None
) -> None:
    from tests.fulfillment.conftest import HEADERS, USER

    shop = await open_shop(api, sandbox, "shopee", 2)
    first, second = (o["id"] for o in shop.orders)
    options = await api.get(
        f"/api/marketplace/orders/{first}/shipping-options",
        params={"userId": USER},
        headers=HEADERS,
    )
    assert options.status_code == 200, options.text
    data = options.json()["data"]
    assert set(data["methods"]) == {"pickup", "dropoff", "tracking"}
    address = data["pickupAddresses"][0]
    slot = address["timeSlots"][0]["id"]
    good = await ship(
        api, first, "p1", method="pickup", addressId=address["addressId"], pickupTimeId=slot
    )
    bad = await ship(
        api, second, "p2", method="pickup", addressId=address["addressId"], pickupTimeId="1"
    )
    done = await settled(api, {good.json()["data"]["id"], bad.json()["data"]["id"]})
    assert done[good.json()["data"]["id"]]["status"] == "shipped"
    refused = done[bad.json()["data"]["id"]]
    assert (refused["status"], refused["message"]) == ("failed", "pickup_time_id is invalid.")
    missing = await ship(api, second, "p3", method="pickup")
    assert missing.status_code == 422
    fields = {f["field"] for f in missing.json()["error"]["fields"]}
    assert fields == {"addressId", "pickupTimeId"}


@pytest.mark.parametrize("platform", ["lazada", "facebook"])
async def test_a_multi_line_order_ships_whole_where_the_seller_does_not_split(
    api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None, platform: str
) -> None:
    shop = await open_shop(api, sandbox, platform, 1, lines=3)
    response = await ship(api, shop.orders[0]["id"], "k", **SHIP_BODY[platform])
    fid = response.json()["data"]["id"]
    done = (await settled(api, {fid}))[fid]
    assert done["status"] == "shipped", done
    if platform == "lazada":
        # Every item went into the one package (unlisted items would stay pending).
        from app.sandbox.fulfillment import book_of

        state = sandbox.sandboxes.lazada.shops[shop.credentials["shopId"]]
        order = state.shop.get(int(shop.orders[0]["externalOrderId"]))
        assert order is not None and len(order.items) == 3
        assert book_of(state).of(order).packages[0].shipped
        assert done["packageId"] == f"FP{order.order_id}"


async def test_a_ship_whose_worker_died_is_taken_over_after_its_lease(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    redis: Any,
) -> None:
    from app.fulfillment.service import sweep
    from app.worker_context import WorkerContext
    from tests.conftest import running_worker

    shop = await open_shop_without_worker(api, sandbox)
    response = await ship(api, shop.orders[0]["id"], "k", method="dropoff")
    fid = response.json()["data"]["id"]
    # The worker claimed it and died: its job is gone, its lease ran out.
    await redis.flushdb()
    async with session_factory() as session, session.begin():
        await session.execute(
            update(OrderFulfillment)
            .where(OrderFulfillment.id == uuid.UUID(fid))
            .values(lease_until=datetime.now(UTC) - timedelta(seconds=1), attempts=1)
        )
    settings = api.app.state.settings  # type: ignore[attr-defined]
    wc = WorkerContext.create(settings, redis=redis)
    try:
        assert await sweep(wc) == 1
    finally:
        await wc.close()
    async with running_worker(settings):
        done = (await settled(api, {fid}))[fid]
    assert done["status"] == "shipped"


async def test_a_ship_claimed_too_often_without_an_answer_fails(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    redis: Any,
) -> None:
    from app.fulfillment.service import MAX_SHIP_CLAIMS
    from tests.conftest import running_worker

    shop = await open_shop_without_worker(api, sandbox)
    before = sandbox.sandboxes.shopee.calls["/api/v2/logistics/ship_order"]
    response = await ship(api, shop.orders[0]["id"], "k", method="dropoff")
    fid = response.json()["data"]["id"]
    async with session_factory() as session, session.begin():
        await session.execute(
            update(OrderFulfillment)
            .where(OrderFulfillment.id == uuid.UUID(fid))
            .values(attempts=MAX_SHIP_CLAIMS)
        )
    async with running_worker(api.app.state.settings):  # type: ignore[attr-defined]
        done = (await settled(api, {fid}))[fid]
    assert done["status"] == "failed"
    assert done["message"] == f"Gave up after {MAX_SHIP_CLAIMS} attempts"
    assert sandbox.sandboxes.shopee.calls["/api/v2/logistics/ship_order"] == before
