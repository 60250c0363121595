"""Processing stored events: orders through the sync's writer, authorization, retries, the
inbox API, and Shopee's lost pushes. Pushes come from the sandboxes, signed."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import (
    MarketplaceConnection,
    MarketplaceOrder,
    MarketplaceSyncLog,
    MarketplaceWebhook,
)
from app.webhooks import drain, service
from app.worker_context import WorkerContext
from tests.conftest import RunningSandbox, auth_headers
from tests.sync.conftest import connect_shop, control
from tests.webhooks.conftest import PUBLIC_BASE_URL, PUSH_URL, stored_events

pytestmark = pytest.mark.usefixtures("sandbox_to_api")

URL = PUBLIC_BASE_URL + PUSH_URL


async def orders_of(api: httpx.AsyncClient, user: str = "seller-1") -> dict[str, dict[str, Any]]:
    response = await api.get(
        "/api/marketplace/orders", params={"limit": 200}, headers=auth_headers(user)
    )
    assert response.status_code == 200, response.text
    return {o["externalOrderId"]: o for o in response.json()["data"]}


async def process_all(wc: WorkerContext, session_factory: async_sessionmaker) -> list[str]:
    """Drain every connection that has events, as the worker's jobs would; the statuses."""
    for connection_id in dict.fromkeys(
        e.connection_id for e in await stored_events(session_factory)
    ):
        assert connection_id is not None
        await drain.drain(wc, connection_id)
    return [e.status for e in await stored_events(session_factory)]


async def changed_order(sandbox: RunningSandbox, platform: str, shop_id: str, **extra: Any) -> str:
    changed = await control(
        sandbox, platform, "orders/change", {"shopId": shop_id, "fraction": 0.1, **extra}
    )
    order_id: str = changed["changed"][0]["orderId"]
    return order_id


@pytest.mark.parametrize(("platform", "status"), [("shopee", "CANCELLED"), ("lazada", None)])
async def test_an_order_push_for_an_order_not_synced_yet_stores_it(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
    platform: str,
    status: str | None,
) -> None:
    _, credentials = await connect_shop(api, sandbox, platform, order_count=30)
    extra = {"status": status} if status else {}
    order_id = await changed_order(sandbox, platform, credentials["shopId"], **extra)
    assert await orders_of(api) == {}

    await control(
        sandbox,
        platform,
        "webhooks/send",
        {"shopId": credentials["shopId"], "url": URL, "orderIds": [order_id]},
    )
    # Lazada pushes once per order line: one drain reads the order once for all of them.
    outcomes = await process_all(worker_context, session_factory)

    assert set(outcomes) == {"processed"}
    stored = await orders_of(api)
    assert list(stored) == [order_id]
    if status:
        assert stored[order_id]["status"] == "cancelled"
    [first, *_] = await stored_events(session_factory)
    assert first.status == "processed" and first.attempts == 1 and first.processed_at


async def test_processing_an_event_twice_changes_nothing_more(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
) -> None:
    _, credentials = await connect_shop(api, sandbox, "shopee", order_count=10)
    order_id = await changed_order(sandbox, "shopee", credentials["shopId"])
    await control(
        sandbox,
        "shopee",
        "webhooks/send",
        {"shopId": credentials["shopId"], "url": URL, "orderIds": [order_id]},
    )
    [event] = await stored_events(session_factory)
    assert event.connection_id is not None

    assert await drain.drain(worker_context, event.connection_id) == {"processed": 1}
    assert await drain.drain(worker_context, event.connection_id) == {}
    [again] = await stored_events(session_factory)
    assert again.attempts == 1
    async with session_factory() as session:
        assert len((await session.scalars(select(MarketplaceOrder))).all()) == 1


async def test_shopee_tracking_number_push_refreshes_the_order(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
) -> None:
    _, credentials = await connect_shop(api, sandbox, "shopee", order_count=10)
    order_id = await changed_order(sandbox, "shopee", credentials["shopId"])
    await control(
        sandbox,
        "shopee",
        "webhooks/send",
        {"shopId": credentials["shopId"], "url": URL, "orderIds": [order_id], "code": 4},
    )

    assert await process_all(worker_context, session_factory) == ["processed"]
    [event] = await stored_events(session_factory)
    assert event.event_type == "tracking_number"
    assert list(await orders_of(api)) == [order_id]


@pytest.mark.parametrize(
    ("platform", "push", "status", "reason_has"),
    [
        ("shopee", {"code": 2}, "reauth_required", "withdrew"),
        ("shopee", {"code": 12}, "active", "expires"),
        ("lazada", {"messageType": 8}, "active", "expires"),
    ],
)
async def test_authorization_pushes_update_the_connection(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
    platform: str,
    push: dict[str, int],
    status: str,
    reason_has: str,
) -> None:
    connection, credentials = await connect_shop(api, sandbox, platform)
    await control(
        sandbox, platform, "webhooks/send", {"shopId": credentials["shopId"], "url": URL, **push}
    )

    assert await process_all(worker_context, session_factory) == ["processed"]
    shown = await api.get(
        f"/api/marketplace/connections/{connection['id']}", headers=auth_headers("seller-1")
    )
    assert shown.json()["data"]["status"] == status
    async with session_factory() as session:
        stored = await session.get(MarketplaceConnection, uuid.UUID(connection["id"]))
        assert stored is not None and reason_has in (stored.status_reason or "")


@pytest.mark.parametrize(
    ("platform", "push", "event_type"),
    [
        ("shopee", {"code": 6}, "banned_item"),
        ("shopee", {"code": 8}, "reserved_stock_change"),
        ("lazada", {"messageType": 4}, "product_updated"),
        ("lazada", {"messageType": 6}, "low_stock"),
    ],
)
async def test_product_and_stock_pushes_start_a_product_sync(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
    platform: str,
    push: dict[str, Any],
    event_type: str,
) -> None:
    connection, credentials = await connect_shop(api, sandbox, platform)
    await control(
        sandbox, platform, "webhooks/send", {"shopId": credentials["shopId"], "url": URL, **push}
    )
    [received] = await stored_events(session_factory)
    assert (received.event_type, received.status) == (event_type, "received")

    assert await process_all(worker_context, session_factory) == ["processed"]
    async with session_factory() as session:
        kinds = (
            await session.scalars(
                select(MarketplaceSyncLog.kind).where(
                    MarketplaceSyncLog.connection_id == uuid.UUID(connection["id"])
                )
            )
        ).all()
    assert kinds == ["products"]


@pytest.mark.parametrize(
    ("push", "event_type", "status"),
    [
        # A comment on a post with no live session is not an order.
        ({"field": "feed"}, "feed", "ignored"),
        # A buyer's message opens Meta's 24-hour window for replies (app/live).
        ({"field": "messages"}, "messages", "processed"),
    ],
)
async def test_page_events_go_to_live_selling(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
    push: dict[str, Any],
    event_type: str,
    status: str,
) -> None:
    _, credentials = await connect_shop(api, sandbox, "facebook")
    await control(
        sandbox, "facebook", "webhooks/send", {"shopId": credentials["shopId"], "url": URL, **push}
    )
    [received] = await stored_events(session_factory)
    assert (received.event_type, received.status) == (event_type, "received")

    assert await process_all(worker_context, session_factory) == [status]
    [event] = await stored_events(session_factory)
    assert (event.error_message is not None) == (status == "ignored")


async def test_a_failing_order_read_retries_then_fails_with_the_reason(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
) -> None:
    _, credentials = await connect_shop(api, sandbox, "shopee", order_count=10)
    order_id = await changed_order(sandbox, "shopee", credentials["shopId"])
    await control(
        sandbox,
        "shopee",
        "webhooks/send",
        {"shopId": credentials["shopId"], "url": URL, "orderIds": [order_id]},
    )
    [event] = await stored_events(session_factory)
    assert event.connection_id is not None
    await control(sandbox, "shopee", "faults", {"server_error_rate": 1.0})

    attempts = worker_context.settings.clients.max_attempts
    for _ in range(attempts):
        await drain.drain(worker_context, event.connection_id)
        async with session_factory() as session:  # as if the back-off had passed
            await session.execute(update(MarketplaceWebhook).values(next_attempt_at=func.now()))
            await session.commit()

    [failed] = await stored_events(session_factory)
    assert failed.status == "failed" and failed.attempts == attempts
    assert failed.error_message and "500" in failed.error_message

    await control(sandbox, "shopee", "faults", {"reset": True})
    other = await api.post(
        f"/api/marketplace/webhooks/{event.id}/retry", headers=auth_headers("seller-2")
    )
    redriven = await api.post(
        f"/api/marketplace/webhooks/{event.id}/retry", headers=auth_headers("seller-1")
    )
    assert other.status_code == 404
    assert redriven.status_code == 200 and redriven.json()["data"]["status"] == "received"
    assert await drain.drain(worker_context, event.connection_id) == {"processed": 1}
    again = await api.post(
        f"/api/marketplace/webhooks/{event.id}/retry", headers=auth_headers("seller-1")
    )
    assert again.status_code == 409
    assert list(await orders_of(api)) == [order_id]


async def test_the_inbox_lists_a_users_events_with_filters_and_a_cursor(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
) -> None:
    connection, credentials = await connect_shop(api, sandbox, "lazada", order_count=5)
    await connect_shop(api, sandbox, "lazada", user="seller-2")
    await control(sandbox, "lazada", "webhooks/send", {"shopId": credentials["shopId"], "url": URL})
    events = await stored_events(session_factory)
    async with session_factory() as session:  # one processed event for the status filter
        await session.execute(
            update(MarketplaceWebhook)
            .where(MarketplaceWebhook.id == events[0].id)
            .values(status="processed")
        )
        await session.commit()
    headers = auth_headers("seller-1")

    pages, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, "connectionId": connection["id"]}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/api/marketplace/webhooks", params=params, headers=headers)).json()
        pages.append(page["data"])
        cursor = page["pagination"]["nextCursor"]
        if cursor is None:
            break
    listed = [e["id"] for data in pages for e in data]
    processed = await api.get(
        "/api/marketplace/webhooks", params={"status": "processed"}, headers=headers
    )
    other_user = await api.get("/api/marketplace/webhooks", headers=auth_headers("seller-2"))
    forbidden = await api.get(
        "/api/marketplace/webhooks", params={"userId": "seller-2"}, headers=headers
    )

    assert listed == sorted((e.id for e in events), reverse=True)
    first = pages[0][0]
    assert set(first) == {
        "id",
        "connectionId",
        "platformCode",
        "eventType",
        "status",
        "attempts",
        "receivedAt",
        "processedAt",
        "errorMessage",
    }
    assert [e["id"] for e in processed.json()["data"]] == [events[0].id]
    assert other_user.json()["data"] == [] and forbidden.status_code == 403


async def test_shopee_lost_pushes_are_stored_processed_and_confirmed(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
) -> None:
    _, credentials = await connect_shop(api, sandbox, "shopee", order_count=10)
    order_id = await changed_order(sandbox, "shopee", credentials["shopId"])
    await control(
        sandbox,
        "shopee",
        "webhooks/send",
        {"shopId": credentials["shopId"], "orderIds": [order_id], "lost": True},
    )
    state = sandbox.sandboxes.shopee
    partner_id = int(credentials["apiKey"])
    assert len(state.lost_pushes[partner_id]) == 1

    assert await service.collect_shopee_lost_pushes(worker_context) == 1
    assert state.lost_pushes[partner_id] == []
    assert await service.collect_shopee_lost_pushes(worker_context) == 0
    assert await process_all(worker_context, session_factory) == ["processed"]
    assert list(await orders_of(api)) == [order_id]


async def test_a_lost_push_already_delivered_is_not_stored_twice(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
) -> None:
    _, credentials = await connect_shop(api, sandbox, "shopee", order_count=10)
    order_id = await changed_order(sandbox, "shopee", credentials["shopId"])
    push = {"shopId": credentials["shopId"], "orderIds": [order_id], "url": URL}
    await control(sandbox, "shopee", "webhooks/send", push)
    await control(sandbox, "shopee", "webhooks/send", {**push, "lost": True})

    assert await service.collect_shopee_lost_pushes(worker_context) == 0
    assert len(await stored_events(session_factory)) == 1
