"""Low-stock alerts: one signed `inventory.low_stock` alert when a master SKU's available
figure reaches its `lowStockAt`, however many sales cross it at once, and another only after
it has recovered above the threshold."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import orjson
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.models import MarketplaceAlert
from app.orders.ingest import upsert_orders
from app.platforms.types import NormalizedOrder, OrderItem, OrderStatus
from tests.alerts.conftest import Receiver
from tests.alerts.test_alerts import run_alert_jobs
from tests.conftest import auth_headers
from tests.orders.factories import add_connection

USER = "seller-1"
SKU = "LOW-1"
HEADERS = auth_headers(USER)
_numbers = itertools.count(1)


async def put(api: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await api.put(
        f"/api/marketplace/inventory/{SKU}", json={"userId": USER, **body}, headers=HEADERS
    )
    assert response.status_code == 200, response.text
    row: dict[str, Any] = response.json()["data"]
    return row


async def low_stock_alerts(session_factory: async_sessionmaker[AsyncSession]) -> list[Any]:
    async with session_factory() as session:
        rows = await session.scalars(
            select(MarketplaceAlert.body)
            .where(MarketplaceAlert.type == "inventory.low_stock")
            .order_by(MarketplaceAlert.created_at)
        )
        return [orjson.loads(body) for body in rows.all()]


async def sell(
    session_factory: async_sessionmaker[AsyncSession],
    connection_id: uuid.UUID,
    count: int,
    *,
    order_id: str | None = None,
    status: OrderStatus = OrderStatus.PENDING,
) -> None:
    """`count` orders of one unit each, stored concurrently (each in its own transaction);
    `order_id` and `status`: one order seen again in a new status."""

    async def one() -> None:
        now = datetime.now(UTC)
        order = NormalizedOrder(
            external_order_id=order_id or f"LOW-{next(_numbers)}",
            status=status,
            raw_status=status.value,
            currency="THB",
            created_at=now,
            updated_at=now,
            subtotal=Decimal("100"),
            shipping_fee=Decimal("0"),
            discount=Decimal("0"),
            total=Decimal("100"),
            items=[OrderItem(sku=SKU, name="Tee", quantity=1, unit_price=Decimal("100"))],
        )
        async with session_factory() as session:
            await upsert_orders(
                session, [order], connection_id=connection_id, user_id=USER, platform_code="shopee"
            )
            await session.commit()

    await asyncio.gather(*(one() for _ in range(count)))


async def test_a_low_stock_alert_is_raised_once_then_again_only_after_recovery(
    api: httpx.AsyncClient,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    receiver: Receiver,
) -> None:
    shop = await add_connection(session_factory, USER, "shopee")
    row = await put(api, available=10, lowStockAt=3)
    assert row["lowStockAt"] == 3
    assert await low_stock_alerts(session_factory) == []

    await sell(session_factory, shop, 6)  # 10 -> 4: above the threshold
    assert await low_stock_alerts(session_factory) == []
    await sell(session_factory, shop, 6)  # concurrently through 3 down to 0 (and oversold)
    [alert] = await low_stock_alerts(session_factory)
    assert alert["type"] == "inventory.low_stock"
    assert (alert["sku"], alert["lowStockAt"], alert["userId"]) == (SKU, 3, USER)
    assert alert["available"] == 3  # the move that crossed it; the rest were already low
    assert alert["message"] and alert["at"]

    # Still low: more sales and a set figure that stays at or below the threshold raise nothing.
    await sell(session_factory, shop, 2)
    await put(api, available=3)
    assert len(await low_stock_alerts(session_factory)) == 1

    # Recovered above it, then down again: the second alert.
    await put(api, available=5)
    assert len(await low_stock_alerts(session_factory)) == 1
    await sell(session_factory, shop, 3)
    alerts = await low_stock_alerts(session_factory)
    assert [a["available"] for a in alerts] == [3, 3]  # 5 -> 4 -> 3 (alert) -> 2

    # A threshold raised above the figure alerts only once it re-arms; removing it re-arms.
    await put(api, lowStockAt=None)
    assert (await put(api, buffer=1))["lowStockAt"] is None
    await put(api, lowStockAt=4)  # 2 available: at or below the new threshold at once
    alerts = await low_stock_alerts(session_factory)
    assert [(a["available"], a["lowStockAt"]) for a in alerts] == [(3, 3), (3, 3), (2, 4)]

    # Delivered signed, the Standard Webhooks way, as every alert is.
    await run_alert_jobs(settings)
    delivered = [r for r in receiver.received if r.json["type"] == "inventory.low_stock"]
    assert len(delivered) == 3
    for item in delivered:
        receiver.verify(item)
    assert {d.json["available"] for d in delivered} == {3, 2}


async def test_bulk_changes_set_the_threshold_and_raise_the_alert(
    api: httpx.AsyncClient,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    response = await api.post(
        "/api/marketplace/inventory/bulk",
        json={
            "userId": USER,
            "items": [
                {"sku": "BULK-LOW", "available": 2, "lowStockAt": 5},
                {"sku": "BULK-FINE", "available": 9, "lowStockAt": 5},
            ],
        },
        headers=HEADERS,
    )
    assert response.status_code == 200, response.text
    assert [a["sku"] for a in await low_stock_alerts(session_factory)] == ["BULK-LOW"]
    async with session_factory() as session:
        fired = await session.execute(
            text(
                "SELECT sku, low_stock_alerted_at IS NOT NULL FROM inventory_skus "
                "WHERE sku LIKE 'BULK-%' ORDER BY sku"
            )
        )
        assert [tuple(r) for r in fired] == [("BULK-FINE", False), ("BULK-LOW", True)]


async def test_a_release_rearms_the_alert(
    api: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    shop = await add_connection(session_factory, USER, "shopee")
    await put(api, available=4, lowStockAt=3)
    await sell(session_factory, shop, 1, order_id="LOW-RELEASED")  # 4 -> 3: the alert
    assert [a["available"] for a in await low_stock_alerts(session_factory)] == [3]
    # The order is cancelled: its unit comes back (3 -> 4), above the threshold again.
    await sell(session_factory, shop, 1, order_id="LOW-RELEASED", status=OrderStatus.CANCELLED)
    async with session_factory() as session:
        row = (
            await session.execute(
                text(
                    "SELECT available, low_stock_alerted_at IS NULL AS armed "
                    "FROM inventory_skus WHERE sku = :sku"
                ),
                {"sku": SKU},
            )
        ).one()
    assert (row.available, row.armed) == (4, True)
    await sell(session_factory, shop, 1)  # 4 -> 3 again: the second alert
    assert [a["available"] for a in await low_stock_alerts(session_factory)] == [3, 3]
