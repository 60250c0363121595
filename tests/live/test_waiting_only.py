"""A buyer who is only on the waiting list has nothing to pay yet (issue 17, point 12)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.live import replies
from app.sandbox.facebook_live import FacebookLiveSandbox, comment_payload
from tests.conftest import RunningSandbox
from tests.live.helpers import HEADERS, USER, comments, deliver, facebook_shop, open_live, order
from tests.live.helpers import set_stock as put_stock

SKU = "ONLY-WAIT"


@pytest.fixture
async def shop(api: httpx.AsyncClient, sandbox: RunningSandbox) -> dict[str, Any]:
    connection, _ = await facebook_shop(api, sandbox)
    await put_stock(api, SKU, 1)
    return connection


async def _comment(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    connection: dict[str, Any],
    live: dict[str, Any],
    buyer: str,
    at: int,
) -> int:
    state: FacebookLiveSandbox = sandbox.sandboxes.facebook_live
    page = state.page(connection["shopId"])
    comment = state.new_comment(page, live["postId"], "CF Q1", buyer_id=buyer, created_time=at)
    await deliver(session_factory, connection, comment_payload(comment))
    row = next(c for c in await comments(api, live) if c["buyerId"] == buyer)
    order_id: int = row["orderId"]
    return order_id


async def _unpaid_ids(api: httpx.AsyncClient) -> list[int]:
    response = await api.get(
        "/api/marketplace/orders",
        params={"userId": USER, "status": "unpaid", "limit": 100},
        headers=HEADERS,
    )
    assert response.status_code == 200, response.text
    return sorted(o["id"] for o in response.json()["data"])


async def _cancelled_in_analytics(api: httpx.AsyncClient) -> int:
    today = datetime.now(UTC).date()
    response = await api.get(
        "/api/marketplace/analytics/summary",
        params={
            "userId": USER,
            "from": (today - timedelta(days=7)).isoformat(),
            "to": (today + timedelta(days=1)).isoformat(),
            "tz": "UTC",
        },
        headers=HEADERS,
    )
    assert response.status_code == 200, response.text
    cancelled: int = response.json()["data"]["total"]["cancelledOrders"]
    return cancelled


async def _post(api: httpx.AsyncClient, order_id: int, action: str) -> httpx.Response:
    return await api.post(
        f"/api/marketplace/orders/{order_id}/{action}", json={"userId": USER}, headers=HEADERS
    )


async def test_a_buyer_only_on_the_waiting_list_has_nothing_to_pay_until_a_unit_is_theirs(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    shop: dict[str, Any],
    session_factory: async_sessionmaker[AsyncSession],
    job_context: dict[str, Any],
) -> None:
    live = await open_live(api, shop, [{"code": "Q1", "sku": SKU, "price": "120"}])
    now = int(datetime.now(UTC).timestamp())
    holder = await _comment(api, sandbox, session_factory, shop, live, "q-holder", now - 30)
    first = await _comment(api, sandbox, session_factory, shop, live, "q-first", now - 20)
    second = await _comment(api, sandbox, session_factory, shop, live, "q-second", now - 10)

    await replies.send_pending(job_context["app"], uuid.UUID(shop["id"]))

    state: FacebookLiveSandbox = sandbox.sandboxes.facebook_live
    for buyer, place in (("q-first", 1), ("q-second", 2)):
        [message] = state.received(shop["shopId"], buyer)
        text = message["text"]
        assert f"คิวที่ {place}" in text, text  # their place in line
        assert "0.00" not in text and "ยอดรวม" not in text and "โอน" not in text, text
    [paying] = state.received(shop["shopId"], "q-holder")
    assert "120.00" in paying["text"] and "โอน" in paying["text"]

    waiting = await order(api, first)
    assert waiting["waitingOnly"] is True
    assert waiting["items"] == [] and [w["quantity"] for w in waiting["waitlist"]] == [1]
    assert (await order(api, holder))["waitingOnly"] is False
    assert await _unpaid_ids(api) == [holder]
    assert (await _post(api, first, "mark-paid")).status_code == 409

    # Cancelled while only waiting: never an order in the analytics.
    assert (await _post(api, second, "cancel")).status_code == 200
    assert await _cancelled_in_analytics(api) == 0

    # The unit comes back: now it is theirs, to pay.
    assert (await _post(api, holder, "cancel")).status_code == 200
    served = await order(api, first)
    assert served["waitingOnly"] is False and [i["quantity"] for i in served["items"]] == [1]
    assert await _unpaid_ids(api) == [first]
    assert await _cancelled_in_analytics(api) == 1
