"""Every order exactly once: failed orders are retried until stored, a change made just before
a sync is in that sync, and the high-water mark never passes what was stored."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import MarketplaceConnection, MarketplaceOrder
from app.platforms.shopee import client as shopee_client
from app.platforms.shopee.mapping import OrderMappingError
from app.sandbox.facebook import SandboxPage
from tests.conftest import RunningSandbox, auth_headers
from tests.sync.conftest import connect_shop, control, sync

pytestmark = pytest.mark.usefixtures("worker")


async def stored_ids(session_factory: async_sessionmaker[AsyncSession], cid: str) -> set[str]:
    async with session_factory() as session:
        rows = await session.scalars(
            select(MarketplaceOrder.external_order_id).where(
                MarketplaceOrder.connection_id == uuid.UUID(cid)
            )
        )
        return set(rows.all())


async def platform_order_ids(api: httpx.AsyncClient, connection: dict[str, Any]) -> list[str]:
    response = await api.get(
        "/api/marketplace/orders",
        params={"userId": connection["userId"], "limit": 200},
        headers=auth_headers(connection["userId"]),
    )
    return [order["externalOrderId"] for order in response.json()["data"]]


async def test_an_order_that_failed_is_retried_by_later_syncs_until_stored(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connection, _ = await connect_shop(api, sandbox, "shopee", order_count=30)
    real_map = shopee_client.map_order
    broken: list[str] = []

    def map_failing_once(raw: dict[str, Any]) -> Any:
        if not broken:
            broken.append(str(raw["order_sn"]))
        if raw["order_sn"] == broken[0]:
            raise OrderMappingError("unexpected shape of item_list")
        return real_map(raw)

    monkeypatch.setattr(shopee_client, "map_order", map_failing_once)
    first = (await sync(api, connection)).json()["data"]
    assert first["status"] == "partial"
    assert first["ordersCreated"] == 29 and first["ordersFailed"] == 1
    assert first["details"]["failedOrders"] == [
        {"externalOrderId": broken[0], "message": "unexpected shape of item_list"}
    ]

    # Still broken: the next (incremental) sync asks for it again and keeps listing it.
    second = (await sync(api, connection)).json()["data"]
    assert second["status"] == "partial"
    assert [f["externalOrderId"] for f in second["details"]["failedOrders"]] == broken

    monkeypatch.setattr(shopee_client, "map_order", real_map)  # the mapper is fixed
    third = (await sync(api, connection)).json()["data"]
    assert third["status"] == "success"
    assert third["ordersCreated"] == 1 and third["ordersFailed"] == 0
    assert third["details"]["failedOrders"] == []
    assert len(await stored_ids(session_factory, connection["id"])) == 30
    assert broken[0] in await platform_order_ids(api, connection)


@pytest.mark.parametrize("platform", ["shopee", "lazada", "facebook"])
async def test_orders_changed_just_before_a_sync_are_in_that_sync(
    api: httpx.AsyncClient, sandbox: RunningSandbox, platform: str
) -> None:
    connection, credentials = await connect_shop(api, sandbox, platform, order_count=40)
    assert (await sync(api, connection)).json()["data"]["status"] == "success"
    listed = await platform_order_ids(api, connection)
    for round_ in range(3):  # each round changes orders in the second the sync starts
        chosen = listed[round_ * 7 : round_ * 7 + 7]
        changed = await control(
            sandbox,
            platform,
            "orders/change",
            {"shopId": credentials["shopId"], "orderIds": chosen, "status": "cancelled"},
        )
        assert {str(order["orderId"]) for order in changed["changed"]} == set(chosen)
        result = (await sync(api, connection)).json()["data"]
        assert result["status"] == "success"
        response = await api.get(
            "/api/marketplace/orders",
            params={"userId": connection["userId"], "limit": 200, "status": "cancelled"},
            headers=auth_headers(connection["userId"]),
        )
        cancelled = {order["externalOrderId"] for order in response.json()["data"]}
        assert set(chosen) <= cancelled, set(chosen) - cancelled


@pytest.mark.parametrize("platform", ["shopee", "lazada", "facebook"])
async def test_high_water_mark_is_the_latest_stored_update_time(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    platform: str,
) -> None:
    connection, _ = await connect_shop(api, sandbox, platform, order_count=25)
    assert (await sync(api, connection)).json()["data"]["status"] == "success"
    async with session_factory() as session:
        latest = await session.scalar(
            select(func.max(MarketplaceOrder.order_updated_at)).where(
                MarketplaceOrder.connection_id == uuid.UUID(connection["id"])
            )
        )
        row = await session.get(MarketplaceConnection, uuid.UUID(connection["id"]))
    assert row is not None and latest is not None
    # Never wall-clock "now": the mark is an update time the platform returned.
    assert row.orders_high_water_mark == latest


async def test_a_shop_with_no_orders_keeps_no_mark(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, _ = await connect_shop(api, sandbox, "lazada", order_count=0)
    assert (await sync(api, connection)).json()["data"]["status"] == "success"
    async with session_factory() as session:
        row = await session.get(MarketplaceConnection, uuid.UUID(connection["id"]))
    assert row is not None and row.orders_high_water_mark is None


async def test_high_water_mark_never_passes_the_window_end(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An order read after the window closed (its details changed meanwhile, or the platform's
    clock runs ahead) carries an update time past `until`: the mark stays at `until`, so the
    next window still covers every change made after this one."""
    connection, credentials = await connect_shop(api, sandbox, "shopee", order_count=20)
    real_map = shopee_client.map_order
    ahead: list[str] = []

    def map_one_ahead(raw: dict[str, Any]) -> Any:
        order = real_map(raw)
        if not ahead or ahead[0] == order.external_order_id:
            ahead[:1] = [order.external_order_id]
            order.updated_at = datetime.now(UTC) + timedelta(hours=1)
        return order

    monkeypatch.setattr(shopee_client, "map_order", map_one_ahead)
    first = (await sync(api, connection)).json()["data"]
    assert first["status"] == "success"
    monkeypatch.setattr(shopee_client, "map_order", real_map)
    until = datetime.fromisoformat(first["details"]["range"]["to"])
    async with session_factory() as session:
        row = await session.get(MarketplaceConnection, uuid.UUID(connection["id"]))
    assert row is not None and row.orders_high_water_mark is not None
    assert row.orders_high_water_mark <= until

    # A change made after the first window: the next sync must see it.
    listed = [o for o in await platform_order_ids(api, connection) if o not in ahead]
    await control(
        sandbox,
        "shopee",
        "orders/change",
        {"shopId": credentials["shopId"], "orderIds": listed[:1], "status": "cancelled"},
    )
    second = (await sync(api, connection)).json()["data"]
    assert second["status"] == "success"
    response = await api.get(
        "/api/marketplace/orders",
        params={"userId": connection["userId"], "limit": 200, "status": "cancelled"},
        headers=auth_headers(connection["userId"]),
    )
    assert listed[0] in {order["externalOrderId"] for order in response.json()["data"]}


async def test_facebook_unreadable_orders_leave_the_first_sync_partial(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two orders whose amount is "abc": the sync ends `partial`, both are listed in
    `failedOrders` with the mapper's words, every other order is stored, and the connection
    stays active (as on Shopee and Lazada)."""
    connection, _ = await connect_shop(api, sandbox, "facebook", order_count=12)
    real_render = SandboxPage.render
    broken: list[str] = []

    def render_two_broken(page: SandboxPage, order: Any) -> dict[str, Any]:
        rendered = real_render(page, order)
        if len(broken) < 2 and rendered["id"] not in broken:
            broken.append(rendered["id"])
        if rendered["id"] in broken:
            rendered["estimated_payment_details"]["total_amount"]["amount"] = "abc"
        return rendered

    monkeypatch.setattr(SandboxPage, "render", render_two_broken)
    result = (await sync(api, connection)).json()["data"]
    assert result["status"] == "partial", result
    assert result["ordersFailed"] == 2
    failed = {f["externalOrderId"]: f["message"] for f in result["details"]["failedOrders"]}
    assert set(failed) == set(broken)
    assert all("amount is not a number: 'abc'" in message for message in failed.values())
    stored = await stored_ids(session_factory, connection["id"])
    assert len(stored) == 10 and not stored & set(broken)
    async with session_factory() as session:
        row = await session.get(MarketplaceConnection, uuid.UUID(connection["id"]))
    assert row is not None and row.status == "active"
