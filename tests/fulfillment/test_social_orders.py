"""Live and Messenger orders ship by hand: the tracking number is stored, no marketplace call."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import MarketplaceOrder
from tests.conftest import RunningSandbox
from tests.fulfillment.conftest import HEADERS, USER, order, ship
from tests.orders.factories import Order, add_connection, add_orders


async def messenger_order(factory: async_sessionmaker[AsyncSession]) -> int:
    connection = await add_connection(factory, USER, "facebook")
    [order_id] = await add_orders(
        factory,
        connection,
        [Order("MSG-1", created_at=datetime(2026, 12, 1, tzinfo=UTC), status="pending")],
    )
    async with factory() as session, session.begin():
        await session.execute(
            update(MarketplaceOrder)
            .where(MarketplaceOrder.id == order_id)
            .values(channel="messenger")
        )
    return order_id


async def test_a_messenger_order_ships_with_the_sellers_tracking_number(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    order_id = await messenger_order(session_factory)
    posts = len(sandbox.sandboxes.facebook.post_paths)
    options = await api.get(
        f"/api/marketplace/orders/{order_id}/shipping-options",
        params={"userId": USER},
        headers=HEADERS,
    )
    assert options.json()["data"]["methods"] == ["tracking"]
    refused = await ship(api, order_id, "m0", method="dropoff")
    assert refused.status_code == 422
    response = await ship(
        api, order_id, "m1", method="tracking", trackingNumber="KEX123456789", carrier="Kerry"
    )
    assert response.status_code == 202, response.text
    fulfillment = response.json()["data"]
    assert fulfillment["status"] == "shipped"
    assert (fulfillment["trackingNumber"], fulfillment["carrier"]) == ("KEX123456789", "Kerry")
    shown = await order(api, order_id)
    assert shown["status"] == "shipped"
    assert shown["fulfillment"]["trackingNumber"] == "KEX123456789"
    assert len(sandbox.sandboxes.facebook.post_paths) == posts  # nothing sent to Meta
    label = await api.get(
        f"/api/marketplace/orders/{order_id}/label", params={"userId": USER}, headers=HEADERS
    )
    assert label.status_code == 409
    assert label.json()["error"]["code"] == "label_not_available"
