from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.live import replies
from app.live.service import handle_page_event
from app.sandbox.facebook_live import FacebookLiveSandbox, comment_payload, messaging_payload
from tests.conftest import RunningSandbox, auth_headers
from tests.live.helpers import deliver, facebook_shop, open_live, order, set_stock

SKU = "LIVE-CAP"


@pytest.fixture
async def shop(api: httpx.AsyncClient, sandbox: RunningSandbox) -> dict[str, Any]:
    connection, _ = await facebook_shop(api, sandbox)
    await set_stock(api, SKU, 10)
    return connection


def _live_sandbox(sandbox: RunningSandbox) -> FacebookLiveSandbox:
    state: FacebookLiveSandbox = sandbox.sandboxes.facebook_live
    return state


async def _comment(
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    connection: dict[str, Any],
    live: dict[str, Any],
    message: str,
    buyer: str,
) -> str:
    state = _live_sandbox(sandbox)
    page = state.page(connection["shopId"])
    comment = state.new_comment(page, live["postId"], message, buyer_id=buyer, buyer_name="นิด")
    await deliver(session_factory, connection, comment_payload(comment))
    return comment.comment_id


async def _send(job_context: dict[str, Any], connection: dict[str, Any]) -> int:
    return await replies.send_pending(job_context["app"], uuid.UUID(connection["id"]))


async def _replies(session_factory: async_sessionmaker[AsyncSession]) -> list[Any]:
    async with session_factory() as session:
        rows = await session.execute(
            text("SELECT kind, status, attempts, order_version FROM social_replies ORDER BY id")
        )
        return list(rows)


async def test_one_private_reply_then_one_message_per_change(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    shop: dict[str, Any],
    session_factory: async_sessionmaker[AsyncSession],
    job_context: dict[str, Any],
) -> None:
    live = await open_live(api, shop, [{"code": "C1", "sku": SKU, "price": "150"}])
    state = _live_sandbox(sandbox)
    await _comment(sandbox, session_factory, shop, live, "CF C1", "buyer-r")
    assert await _send(job_context, shop) == 1
    assert await _send(job_context, shop) == 0  # nothing is sent twice
    inbox = state.received(shop["shopId"], "buyer-r")
    assert [m["via"] for m in inbox] == ["private_reply"]
    assert "C1 x1" in inbox[0]["text"] and "150.00" in inbox[0]["text"]

    # Outside the 24-hour window an update goes with the POST_PURCHASE_UPDATE tag...
    await _comment(sandbox, session_factory, shop, live, "CF C1 x2", "buyer-r")
    assert await _send(job_context, shop) == 1
    update = state.received(shop["shopId"], "buyer-r")[1]
    assert (update["via"], update["messagingType"], update["tag"]) == (
        "message",
        "MESSAGE_TAG",
        "POST_PURCHASE_UPDATE",
    )
    assert "450.00" in update["text"]

    # ...and as a standard message once the buyer has written to the Page.
    state.windows[(shop["shopId"], "buyer-r")] = time.time()
    async with session_factory() as session:
        event = messaging_payload(
            shop["shopId"], "buyer-r", {"message": {"mid": "m1", "text": "โอนแล้วค่ะ"}}
        )
        assert (
            await handle_page_event(session, uuid.UUID(shop["id"]), "messages", event)
            == "processed"
        )
        await session.commit()
    await _comment(sandbox, session_factory, shop, live, "CF C1", "buyer-r")
    assert await _send(job_context, shop) == 1
    third = state.received(shop["shopId"], "buyer-r")[2]
    assert (third["messagingType"], third["tag"]) == ("RESPONSE", None)
    assert [(r.kind, r.status) for r in await _replies(session_factory)] == [
        ("private_reply", "sent"),
        ("update", "sent"),
        ("update", "sent"),
    ]


async def test_a_burst_of_changes_before_sending_is_one_message(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    shop: dict[str, Any],
    session_factory: async_sessionmaker[AsyncSession],
    job_context: dict[str, Any],
) -> None:
    live = await open_live(
        api,
        shop,
        [{"code": "C1", "sku": SKU, "price": "150"}],
        replyTemplate="{buyerName}: {lines} = {total} {currency} {",
    )
    for _ in range(3):
        await _comment(sandbox, session_factory, shop, live, "CF C1", "buyer-b")
    assert await _send(job_context, shop) == 1
    inbox = _live_sandbox(sandbox).received(shop["shopId"], "buyer-b")
    lines = "\n".join(["- C1 x1 = 150.00"] * 3)
    assert [m["text"] for m in inbox] == [f"นิด: {lines} = 450.00 THB {{"]
    statuses = [r.status for r in await _replies(session_factory)]
    assert statuses == ["sent", "superseded", "superseded"]


async def test_a_refused_message_is_recorded_on_the_order_and_not_retried(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    shop: dict[str, Any],
    session_factory: async_sessionmaker[AsyncSession],
    job_context: dict[str, Any],
) -> None:
    live = await open_live(api, shop, [{"code": "C1", "sku": SKU, "price": "150"}])
    comment_id = await _comment(sandbox, session_factory, shop, live, "CF C1", "buyer-x")
    _live_sandbox(sandbox).replied.add(comment_id)  # Meta refuses a second private reply
    for _ in range(2):
        assert await _send(job_context, shop) == 0
    assert _live_sandbox(sandbox).received(shop["shopId"], "buyer-x") == []
    [reply] = await _replies(session_factory)
    assert (reply.status, reply.attempts) == ("refused", 1)
    async with session_factory() as session:
        order_id = await session.scalar(text("SELECT order_id FROM social_replies"))
    body = await order(api, order_id)
    assert "private reply" in body["raw"]["replyError"]["message"]


async def test_a_shipped_live_order_tells_the_buyer_the_carrier_and_tracking_number(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    shop: dict[str, Any],
    session_factory: async_sessionmaker[AsyncSession],
    job_context: dict[str, Any],
) -> None:
    live = await open_live(api, shop, [{"code": "S1", "sku": SKU, "price": "90"}])
    state = _live_sandbox(sandbox)
    await _comment(sandbox, session_factory, shop, live, "CF S1", "buyer-s")
    assert await _send(job_context, shop) == 1
    [order_id] = [o for o in await _order_ids(session_factory)]
    headers = auth_headers("seller-1")
    paid = await api.post(
        f"/api/marketplace/orders/{order_id}/mark-paid",
        json={"userId": "seller-1"},
        headers=headers,
    )
    assert paid.status_code == 200, paid.text
    assert await _send(job_context, shop) == 1
    shipped = await api.post(
        f"/api/marketplace/orders/{order_id}/ship",
        json={
            "userId": "seller-1",
            "method": "tracking",
            "trackingNumber": "TH0123456789",
            "carrier": "Flash Express",
        },
        headers={**headers, "Idempotency-Key": "ship-s1"},
    )
    assert shipped.status_code == 202, shipped.text
    assert await _send(job_context, shop) == 1
    assert await _send(job_context, shop) == 0  # told once
    last = state.received(shop["shopId"], "buyer-s")[-1]["text"]
    assert "TH0123456789" in last and "Flash Express" in last


async def _order_ids(session_factory: async_sessionmaker[AsyncSession]) -> list[int]:
    async with session_factory() as session:
        rows = await session.execute(text("SELECT order_id FROM social_orders ORDER BY order_id"))
        return [int(row.order_id) for row in rows]
