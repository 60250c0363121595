"""Cancel with the platform's reasons, and answers to buyers' cancellation requests."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.conftest import RunningSandbox
from tests.fulfillment.conftest import HEADERS, USER, control, open_shop, order, sync

REASON = {
    "shopee": "CUSTOMER_REQUEST",
    "lazada": "10000021",
    "facebook": "CUSTOMER_REQUESTED",
    "tiktok": "seller_cancel_reason_out_of_stock",
}


@pytest.mark.parametrize("platform", ["shopee", "lazada", "facebook", "tiktok"])
async def test_cancel_with_a_reason_cancels_on_the_platform_and_here(
    api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None, platform: str
) -> None:
    shop = await open_shop(api, sandbox, platform, 1)
    order_id = shop.orders[0]["id"]
    reasons = await api.get(
        f"/api/marketplace/orders/{order_id}/cancel-reasons",
        params={"userId": USER},
        headers=HEADERS,
    )
    assert reasons.status_code == 200, reasons.text
    assert REASON[platform] in [r["code"] for r in reasons.json()["data"]]
    response = await api.post(
        f"/api/marketplace/orders/{order_id}/cancel",
        json={"userId": USER, "reason": REASON[platform]},
        headers=HEADERS,
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["status"] == "cancelled"
    # The platform has it cancelled too: a sync keeps it so.
    await asyncio.sleep(1.1)
    await sync(api, shop)
    assert (await order(api, order_id))["status"] == "cancelled"


@pytest.mark.parametrize("platform", ["shopee", "lazada"])
async def test_cancel_without_a_reason_stays_409_and_an_unknown_reason_is_422(
    api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None, platform: str
) -> None:
    shop = await open_shop(api, sandbox, platform, 1)
    order_id = shop.orders[0]["id"]
    bare = await api.post(
        f"/api/marketplace/orders/{order_id}/cancel", json={"userId": USER}, headers=HEADERS
    )
    assert bare.status_code == 409
    assert bare.json()["error"]["code"] == "not_a_social_order"
    wrong = await api.post(
        f"/api/marketplace/orders/{order_id}/cancel",
        json={"userId": USER, "reason": "NO_SUCH_REASON"},
        headers=HEADERS,
    )
    assert wrong.status_code == 422
    assert wrong.json()["error"]["fields"][0]["field"] == "reason"
    assert (await order(api, order_id))["status"] == "pending"


@pytest.mark.parametrize("platform", ["shopee", "lazada", "tiktok"])
@pytest.mark.parametrize("accept", [True, False])
async def test_a_buyers_cancellation_request_is_accepted_or_refused(
    api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None, platform: str, accept: bool
) -> None:
    shop = await open_shop(api, sandbox, platform, 1)
    order_id = shop.orders[0]["id"]
    asked = {
        "shopId": shop.credentials["shopId"],
        "orderIds": [shop.orders[0]["externalOrderId"]],
        "status": "cancelling",
    }
    await control(sandbox, platform, "orders/change", asked)
    await asyncio.sleep(1.1)
    await sync(api, shop)
    response = await api.post(
        f"/api/marketplace/orders/{order_id}/cancellation-request",
        json={"userId": USER, "accept": accept},
        headers=HEADERS,
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["status"] == ("cancelled" if accept else "pending")
    # Asked again, there is no request left to answer: the platform's refusal is 409.
    again = await api.post(
        f"/api/marketplace/orders/{order_id}/cancellation-request",
        json={"userId": USER, "accept": accept},
        headers=HEADERS,
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "marketplace_refused"


async def test_a_cancelled_orders_stock_goes_back(
    api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None
) -> None:
    from tests.inventory.helpers import SKU, inventory, set_stock
    from tests.inventory.helpers import settled as stock_settled
    from tests.products.helpers import connect, sync_products

    connection, credentials = await connect(api, sandbox, "shopee")
    await sync_products(api, connection)
    await set_stock(api, available=10)
    await stock_settled(api)
    placed = {"shopId": credentials["shopId"], "sku": SKU, "quantity": 2}
    await control(sandbox, "shopee", "orders", placed)
    await sync(api, connection)
    row = await inventory(api)
    assert (row["available"], row["reserved"]) == (8, 2)
    [listed] = (
        await api.get(
            "/api/marketplace/orders",
            params={"userId": USER, "connectionId": connection["id"]},
            headers=HEADERS,
        )
    ).json()["data"]
    response = await api.post(
        f"/api/marketplace/orders/{listed['id']}/cancel",
        json={"userId": USER, "reason": "OUT_OF_STOCK"},
        headers=HEADERS,
    )
    assert response.status_code == 200, response.text
    row = await inventory(api)
    assert (row["available"], row["reserved"]) == (10, 0)
