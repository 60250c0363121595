"""Concurrency at the last units, pushes that are not applied or are refused, and the nightly
recompute."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.inventory.recompute import recompute_counters
from app.models import StockReservation
from app.orders.ingest import upsert_orders
from app.platforms.types import NormalizedOrder, OrderItem, OrderStatus
from tests.conftest import RunningSandbox
from tests.inventory.helpers import (
    SKU,
    USER,
    eventually,
    inventory,
    ledger,
    set_stock,
    settled,
)
from tests.products.helpers import connect, sandbox_shop, sandbox_stock, sync_products


def _order(number: int, quantity: int = 1) -> NormalizedOrder:
    now = datetime.now(UTC)
    return NormalizedOrder(
        external_order_id=f"RACE-{number}",
        status=OrderStatus.PENDING,
        raw_status="pending",
        currency="THB",
        created_at=now,
        updated_at=now,
        subtotal=Decimal("100"),
        shipping_fee=Decimal("0"),
        discount=Decimal("0"),
        total=Decimal("100"),
        items=[OrderItem(sku=SKU, name="Tee", quantity=quantity, unit_price=Decimal("100"))],
    )


async def test_twenty_concurrent_orders_for_the_last_five_units_reserve_five_and_flag_the_rest(
    stock_api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    worker: None,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, _ = await connect(stock_api, sandbox, "lazada")
    await sync_products(stock_api, connection)
    await set_stock(stock_api, available=5)

    async def one(number: int) -> None:
        async with session_factory() as session:
            await upsert_orders(
                session,
                [_order(number)],
                connection_id=uuid.UUID(connection["id"]),
                user_id=USER,
                platform_code="lazada",
            )
            await session.commit()

    await asyncio.gather(*(one(n) for n in range(20)))

    async with session_factory() as session:
        total = await session.scalar(select(func.count()).select_from(StockReservation))
        flagged = await session.scalar(
            select(func.count())
            .select_from(StockReservation)
            .where(StockReservation.oversold_quantity > 0)
        )
    assert (total, flagged) == (20, 15)
    row = await inventory(stock_api)
    assert (row["available"], row["oversold"], row["reserved"]) == (0, 15, 20)
    reserves = [e for e in await ledger(stock_api) if e["kind"] == "reserve"]
    assert [e["oversold"] for e in reserves] == [False] * 5 + [True] * 15
    assert all(e["availableAfter"] >= 0 for e in reserves)


async def test_a_push_answered_200_but_not_applied_is_caught_on_read_back(
    stock_api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None
) -> None:
    connection, credentials = await connect(stock_api, sandbox, "lazada")
    await sync_products(stock_api, connection)
    await settled(stock_api)
    before = sandbox_stock(sandbox, "lazada", credentials["shopId"], SKU)
    sandbox.sandboxes.lazada.faults.ignore_stock_updates = True
    target = before + 7

    await set_stock(stock_api, available=target)

    row = await eventually(
        lambda: _with_status(stock_api, "drift"),
    )
    listing = row["listings"][0]
    assert listing["pushedStock"] == target and listing["platformStock"] == before
    assert str(before) in listing["message"]
    readbacks = [e for e in await ledger(stock_api) if e["kind"] == "readback"]
    assert readbacks[-1]["quantity"] == before and "shows" in readbacks[-1]["message"]

    sandbox.sandboxes.lazada.faults.ignore_stock_updates = False
    # The drifting listing is pushed again (with back-off) and comes back in step.
    await eventually(lambda: _with_status(stock_api, "ok"), seconds=30)
    assert sandbox_stock(sandbox, "lazada", credentials["shopId"], SKU) == target


async def _with_status(api: httpx.AsyncClient, status: str) -> dict[str, object] | None:
    row = await inventory(api)
    return row if row["listings"] and row["listings"][0]["pushStatus"] == status else None


async def test_a_refused_push_shows_the_platforms_reason_and_is_not_retried(
    stock_api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None
) -> None:
    connection, credentials = await connect(stock_api, sandbox, "shopee")
    await sync_products(stock_api, connection)
    await settled(stock_api)
    sandbox_shop(sandbox, "shopee", credentials["shopId"]).campaign_locked.add(SKU)
    calls_before = sandbox.sandboxes.shopee.calls["/api/v2/product/update_stock"]

    await set_stock(stock_api, available=3)

    row = await eventually(lambda: _with_status(stock_api, "unsupported"))
    assert "promotion" in row["listings"][0]["message"]
    pushes = [e for e in await ledger(stock_api) if e["kind"] == "push"]
    assert "promotion" in pushes[-1]["message"]
    await asyncio.sleep(1.5)  # longer than the first retry's back-off: none may come
    calls = sandbox.sandboxes.shopee.calls["/api/v2/product/update_stock"] - calls_before
    assert calls == 1


async def test_the_nightly_recompute_reports_and_repairs_drifted_counters(
    stock_api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    worker: None,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, _ = await connect(stock_api, sandbox, "facebook")
    await sync_products(stock_api, connection)
    await set_stock(stock_api, available=9)
    async with session_factory() as session:
        await upsert_orders(
            session,
            [_order(1, quantity=2)],
            connection_id=uuid.UUID(connection["id"]),
            user_id=USER,
            platform_code="facebook",
        )
        await session.execute(
            text("UPDATE inventory_skus SET available = 40, reserved = 0 WHERE sku = :sku"),
            {"sku": SKU},
        )
        await session.commit()

    report = await recompute_counters(session_factory)

    assert report == [
        {
            "userId": USER,
            "sku": SKU,
            "stored": {"available": 40, "oversold": 0, "reserved": 0},
            "derived": {"available": 7, "oversold": 0, "reserved": 2},
        }
    ]
    row = await inventory(stock_api)
    assert (row["available"], row["reserved"]) == (7, 2)
    assert await recompute_counters(session_factory) == []
