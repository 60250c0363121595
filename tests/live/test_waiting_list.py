"""Units that come back, from any source, serve the waiting lines of lives and Messenger carts
first, first come first served by comment time, then id."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.inventory.recompute import recompute_counters
from app.live.service import handle_page_event
from app.orders.ingest import upsert_orders
from app.platforms.types import NormalizedOrder, OrderItem, OrderStatus
from tests.conftest import RunningSandbox
from tests.live.helpers import (
    BASE_TIME,
    HEADERS,
    USER,
    comment_id_of,
    comments,
    deliver,
    facebook_shop,
    feed_event,
    live_orders,
    open_live,
    order,
    set_stock,
    stock,
)

SKU = "WAIT-SHIRT"


@pytest.fixture
async def shop(api: httpx.AsyncClient, sandbox: RunningSandbox) -> dict[str, Any]:
    connection, _ = await facebook_shop(api, sandbox)
    await set_stock(api, SKU, 1)
    return connection


async def _live(api: httpx.AsyncClient, connection: dict[str, Any]) -> dict[str, Any]:
    return await open_live(api, connection, [{"code": "W1", "sku": SKU, "price": "100"}])


async def _say(
    session_factory: async_sessionmaker[AsyncSession],
    connection: dict[str, Any],
    live: dict[str, Any],
    buyer: str,
    at: int,
) -> str:
    event = feed_event(connection["shopId"], live["postId"], "CF W1", buyer=buyer, at=at)
    assert await deliver(session_factory, connection, event) == "processed"
    return comment_id_of(event)


async def _outcome(api: httpx.AsyncClient, live: dict[str, Any], comment_id: str) -> str:
    row = next(c for c in await comments(api, live) if c["commentId"] == comment_id)
    outcome: str = row["outcome"]
    return outcome


async def _cart(
    session_factory: async_sessionmaker[AsyncSession],
    connection: dict[str, Any],
    psid: str,
    at_ms: int,
) -> int:
    event = {
        "object": "page",
        "entry": [
            {
                "id": connection["shopId"],
                "time": at_ms,
                "messaging": [
                    {
                        "sender": {"id": psid},
                        "recipient": {"id": connection["shopId"]},
                        "timestamp": at_ms,
                        "order": {
                            "products": [
                                {"id": "1", "retailer_id": SKU, "name": "Shirt", "quantity": 1}
                            ]
                        },
                    }
                ],
            }
        ],
    }
    async with session_factory() as session:
        status = await handle_page_event(session, uuid.UUID(connection["id"]), "messages", event)
        assert status == "processed"
        await session.commit()
    rows = [r for r in await live_orders(session_factory) if r.buyer_external_id == psid]
    return int(rows[-1].id)


async def _cancel(api: httpx.AsyncClient, order_id: int) -> None:
    response = await api.post(
        f"/api/marketplace/orders/{order_id}/cancel", json={"userId": USER}, headers=HEADERS
    )
    assert response.status_code == 200, response.text


def _marketplace_order(status: OrderStatus, at: datetime) -> NormalizedOrder:
    return NormalizedOrder(
        external_order_id="MP-1",
        status=status,
        raw_status=status.value,
        currency="THB",
        created_at=datetime.now(UTC),
        updated_at=at,
        subtotal=Decimal(100),
        shipping_fee=Decimal(0),
        discount=Decimal(0),
        total=Decimal(100),
        items=[OrderItem(sku=SKU, name="Shirt", quantity=1, unit_price=Decimal(100))],
    )


async def _ingest(
    session_factory: async_sessionmaker[AsyncSession],
    connection: dict[str, Any],
    order_: NormalizedOrder,
) -> None:
    async with session_factory() as session:
        await upsert_orders(
            session,
            [order_],
            connection_id=uuid.UUID(connection["id"]),
            user_id=USER,
            platform_code="facebook",
        )
        await session.commit()


async def test_a_cancelled_marketplace_order_serves_the_live_waiting_list(
    api: httpx.AsyncClient, shop: dict[str, Any], session_factory: async_sessionmaker[AsyncSession]
) -> None:
    now = datetime.now(UTC)
    await _ingest(session_factory, shop, _marketplace_order(OrderStatus.PENDING, now))
    assert (await stock(api, SKU))["available"] == 0
    live = await _live(api, shop)
    waiting = await _say(session_factory, shop, live, "m-1", BASE_TIME)
    assert await _outcome(api, live, waiting) == "waitlisted"

    later = now + timedelta(minutes=1)
    await _ingest(session_factory, shop, _marketplace_order(OrderStatus.CANCELLED, later))

    assert await _outcome(api, live, waiting) == "ordered"
    row = next(c for c in await comments(api, live) if c["commentId"] == waiting)
    body = await order(api, row["orderId"])
    assert [i["quantity"] for i in body["items"]] == [1] and body["waitlist"] == []
    assert body["total"] == "100.00"
    figures = await stock(api, SKU)
    assert (figures["available"], figures["reserved"]) == (0, 1)
    assert await recompute_counters(session_factory) == []


async def test_a_cancelled_live_order_serves_the_earliest_waiting_line_even_a_cart(
    api: httpx.AsyncClient, shop: dict[str, Any], session_factory: async_sessionmaker[AsyncSession]
) -> None:
    live = await _live(api, shop)
    holder = await _say(session_factory, shop, live, "l-1", BASE_TIME)
    cart = await _cart(session_factory, shop, "psid-early", (BASE_TIME + 5) * 1000)
    late = await _say(session_factory, shop, live, "l-2", BASE_TIME + 10)
    assert (await order(api, cart))["waitlist"] != []
    holder_row = next(c for c in await comments(api, live) if c["commentId"] == holder)

    await _cancel(api, holder_row["orderId"])

    served = await order(api, cart)
    assert [i["quantity"] for i in served["items"]] == [1] and served["waitlist"] == []
    assert await _outcome(api, live, late) == "waitlisted"
    assert (await stock(api, SKU))["reserved"] == 1
    assert await recompute_counters(session_factory) == []


async def test_a_cancelled_messenger_cart_serves_the_live_waiting_list(
    api: httpx.AsyncClient, shop: dict[str, Any], session_factory: async_sessionmaker[AsyncSession]
) -> None:
    cart = await _cart(session_factory, shop, "psid-holder", BASE_TIME * 1000)
    assert [i["quantity"] for i in (await order(api, cart))["items"]] == [1]
    live = await _live(api, shop)
    waiting = await _say(session_factory, shop, live, "c-1", BASE_TIME + 5)
    assert await _outcome(api, live, waiting) == "waitlisted"

    await _cancel(api, cart)

    assert await _outcome(api, live, waiting) == "ordered"
    assert (await stock(api, SKU))["reserved"] == 1
    assert await recompute_counters(session_factory) == []


async def test_stock_set_higher_fills_the_waiting_lines_of_carts_and_lives_in_order(
    api: httpx.AsyncClient, shop: dict[str, Any], session_factory: async_sessionmaker[AsyncSession]
) -> None:
    live = await _live(api, shop)
    await _say(session_factory, shop, live, "s-1", BASE_TIME)  # holds the one unit
    cart = await _cart(session_factory, shop, "psid-wait", (BASE_TIME + 5) * 1000)
    second = await _say(session_factory, shop, live, "s-2", BASE_TIME + 10)
    third = await _say(session_factory, shop, live, "s-3", BASE_TIME + 20)

    await set_stock(api, SKU, 2)  # two more units come in

    assert [i["quantity"] for i in (await order(api, cart))["items"]] == [1]
    assert await _outcome(api, live, second) == "ordered"
    assert await _outcome(api, live, third) == "waitlisted"
    figures = await stock(api, SKU)
    assert (figures["available"], figures["reserved"]) == (0, 3)
    assert await recompute_counters(session_factory) == []
