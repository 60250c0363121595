"""An order on one channel moves the stock the others show, exactly once."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import StockReservation
from app.sandbox.shopee import push_body
from tests.conftest import RunningSandbox
from tests.inventory.helpers import (
    SKU,
    eventually,
    inventory,
    ledger,
    replay,
    set_stock,
    settled,
    sync_orders,
    three_shops,
)
from tests.products.helpers import sandbox_shop, sandbox_stock
from tests.webhooks.conftest import PUSH_URL, signed


async def test_an_order_on_shopee_lowers_the_stock_lazada_and_meta_show(
    stock_api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None
) -> None:
    shops = await three_shops(stock_api, sandbox)
    await set_stock(stock_api, available=10)
    row = await settled(stock_api)
    assert {item["pushStatus"] for item in row["listings"]} == {"ok"}
    shopee_connection, shopee = shops["shopee"]
    sandbox_shop(sandbox, "shopee", shopee["shopId"]).place_order(SKU, 2)

    await sync_orders(stock_api, shopee_connection)

    for platform in ("lazada", "facebook"):
        shop_id = shops[platform][1]["shopId"]
        await eventually(lambda p=platform, s=shop_id: sandbox_stock(sandbox, p, s, SKU) == 8)
    row = await settled(stock_api)
    assert (row["available"], row["reserved"], row["oversold"]) == (8, 2, 0)
    assert {item["pushedStock"] for item in row["listings"]} == {8}
    kinds = [entry["kind"] for entry in await ledger(stock_api)]
    assert "reserve" in kinds and kinds.count("readback") >= 3


async def test_the_same_order_seen_by_sync_and_webhook_reserves_once(
    stock_api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    worker: None,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    shops = await three_shops(stock_api, sandbox)
    await set_stock(stock_api, available=10)
    await settled(stock_api)
    connection, credentials = shops["shopee"]
    shop = sandbox.sandboxes.shopee.shops[int(credentials["shopId"])]
    order = shop.seeded.place_order(SKU, 3)
    await sync_orders(stock_api, connection)

    shop.seeded.touch(order.index, status="ready_to_ship")
    body = push_body(shop, shop.seeded.order(order.index))
    response = await stock_api.post(
        PUSH_URL, content=body, headers=signed("shopee", credentials, body)
    )
    assert response.status_code == 200
    await eventually(
        lambda: _order_status(session_factory, order.order_id, "ready_to_ship"), seconds=20
    )
    await sync_orders(stock_api, connection)

    async with session_factory() as session:
        count = await session.scalar(select(func.count()).select_from(StockReservation))
    assert count == 1
    row = await settled(stock_api)
    assert (row["available"], row["reserved"]) == (7, 3)
    assert [e["kind"] for e in await ledger(stock_api)].count("reserve") == 1


async def _order_status(
    session_factory: async_sessionmaker[AsyncSession], order_id: int, status: str
) -> bool:
    from sqlalchemy import text

    async with session_factory() as session:
        found = await session.scalar(
            text("SELECT status FROM marketplace_orders WHERE raw::text LIKE :pattern"),
            {"pattern": f"%{order_id}%"},
        )
    return found == status


async def test_cancellation_restores_the_stock_once(
    stock_api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None
) -> None:
    shops = await three_shops(stock_api, sandbox)
    await set_stock(stock_api, available=10)
    await settled(stock_api)
    connection, credentials = shops["lazada"]
    seeded = sandbox_shop(sandbox, "lazada", credentials["shopId"])
    order = seeded.place_order(SKU, 2)
    await sync_orders(stock_api, connection)
    assert (await inventory(stock_api))["available"] == 8

    seeded.touch(order.index, status="cancelled")
    await _sync_until_available(stock_api, connection, 10)
    await sync_orders(stock_api, connection)

    row = await settled(stock_api)
    assert (row["available"], row["reserved"]) == (10, 0)
    kinds = [entry["kind"] for entry in await ledger(stock_api)]
    assert kinds.count("release") == 1 and kinds.count("reserve") == 1
    shopee_id = shops["shopee"][1]["shopId"]
    await eventually(lambda: sandbox_stock(sandbox, "shopee", shopee_id, SKU) == 10)


async def test_the_ledger_adds_up_to_the_available_figure(
    stock_api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None
) -> None:
    shops = await three_shops(stock_api, sandbox)
    await set_stock(stock_api, available=6, buffer=1)
    connection, credentials = shops["shopee"]
    seeded = sandbox_shop(sandbox, "shopee", credentials["shopId"])
    first = seeded.place_order(SKU, 2)
    seeded.place_order(SKU, 3, index_seed=1)
    await sync_orders(stock_api, connection)
    seeded.touch(first.index, status="cancelled")
    await _sync_until_available(stock_api, connection, 6 - 2 - 3 + 2)

    row = await settled(stock_api)
    entries = await ledger(stock_api)

    assert replay(entries) == row["available"] - row["oversold"] == 6 - 2 - 3 + 2
    moves = [e for e in entries if e["kind"] in ("set", "reserve", "release")]
    assert moves[-1]["availableAfter"] == row["available"]
    pushes = [e for e in entries if e["kind"] == "push"]
    assert pushes[-1]["quantity"] == row["sellable"] == 2  # the buffer keeps one back
    assert all(e["connectionId"] for e in pushes)
    assert any(e["orderId"] for e in entries if e["kind"] == "reserve")


async def _sync_until_available(
    api: httpx.AsyncClient, connection: dict[str, object], figure: int
) -> None:
    """Sync until the change is picked up: the sandbox dates a change up to a second ahead,
    and a sync only reads what was updated before it started."""

    async def synced() -> bool:
        await sync_orders(api, connection)
        return bool((await inventory(api))["available"] == figure)

    await eventually(synced)
