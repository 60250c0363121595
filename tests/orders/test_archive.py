"""The order archive: finished orders older than ORDER_ARCHIVE_AFTER_DAYS get `archivedAt`,
leave the order list (unless includeArchived=true) and stay in order detail and analytics."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.orders.service import archive_finished_orders
from app.orders.tasks import archive_orders
from app.worker_context import WorkerContext
from tests.analytics.helpers import analytics_app
from tests.conftest import auth_headers, make_settings
from tests.orders.factories import Order, add_connection, add_orders

USER = "seller-archive"
SessionFactory = async_sessionmaker[AsyncSession]
NOW = datetime.now(UTC)
# (reference, status, days ago): finished and older than 180 days are archived.
ORDERS = [
    ("OLD-COMPLETED", "completed", 200),
    ("OLD-DELIVERED", "delivered", 190),
    ("OLD-CANCELLED", "cancelled", 181),
    ("OLD-RETURNED", "returned", 365),
    ("OLD-FAILED", "failed", 400),
    ("OLD-SHIPPED", "shipped", 300),  # not finished: stays
    ("RECENT-COMPLETED", "completed", 10),  # too recent: stays
]
ARCHIVED = {"OLD-COMPLETED", "OLD-DELIVERED", "OLD-CANCELLED", "OLD-RETURNED", "OLD-FAILED"}


async def store_orders(session_factory: SessionFactory) -> dict[str, int]:
    connection = await add_connection(session_factory, USER, "shopee")
    orders = [
        Order(ref, status=status, created_at=NOW - timedelta(days=days), total=Decimal("100"))
        for ref, status, days in ORDERS
    ]
    ids = await add_orders(session_factory, connection, orders)
    return {ref: order_id for (ref, _, _), order_id in zip(ORDERS, ids, strict=True)}


async def stored(session_factory: SessionFactory) -> dict[str, dict[str, Any]]:
    async with session_factory() as session:
        rows = await session.execute(
            text(
                "SELECT external_order_id, archived_at, status, total, order_updated_at, "
                "updated_at, raw FROM marketplace_orders WHERE user_id = :u"
            ),
            {"u": USER},
        )
        return {row.external_order_id: dict(row._mapping) for row in rows}


async def listed(api: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await api.get(
        "/api/marketplace/orders",
        params={"userId": USER, "limit": 50, **params},
        headers=auth_headers(USER),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_archive_job_run_twice_archives_each_finished_old_order_once(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    await store_orders(session_factory)
    before = await stored(session_factory)
    # Batches of 2: three transactions for five orders.
    assert await archive_finished_orders(session_factory, 180, batch_size=2) == len(ARCHIVED)
    first = await stored(session_factory)
    assert {ref for ref, row in first.items() if row["archived_at"]} == ARCHIVED
    assert await archive_finished_orders(session_factory, 180, batch_size=2) == 0
    second = await stored(session_factory)
    assert second == first  # the second run changed nothing, archived_at included
    # Nothing else of an order changes: not its status, amounts, times or payload.
    for ref, row in first.items():
        assert {**row, "archived_at": None} == {**before[ref], "archived_at": None}


async def test_archived_orders_leave_the_list_but_stay_in_detail_and_analytics(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory, orders_settings: Settings
) -> None:
    ids = await store_orders(session_factory)
    await archive_finished_orders(session_factory, 180)

    default = await listed(orders_api)
    assert {o["externalOrderId"] for o in default["data"]} == {"OLD-SHIPPED", "RECENT-COMPLETED"}
    assert default["pagination"]["total"] == 2
    assert all(o["archivedAt"] is None for o in default["data"])
    everything = await listed(orders_api, includeArchived="true")
    assert everything["pagination"]["total"] == len(ORDERS)
    archived = {o["externalOrderId"] for o in everything["data"] if o["archivedAt"]}
    assert archived == ARCHIVED
    filtered = await listed(orders_api, status="completed")
    assert [o["externalOrderId"] for o in filtered["data"]] == ["RECENT-COMPLETED"]
    paged = await listed(orders_api, limit=1, offset=1)
    assert [o["externalOrderId"] for o in paged["data"]] == ["OLD-SHIPPED"]

    detail = await orders_api.get(
        f"/api/marketplace/orders/{ids['OLD-COMPLETED']}", headers=auth_headers(USER)
    )
    assert detail.status_code == 200
    assert detail.json()["data"]["archivedAt"] is not None

    async with analytics_app(orders_settings) as api:
        response = await api.get(
            "/api/marketplace/analytics/summary",
            params={"from": (NOW - timedelta(days=420)).date().isoformat(), "tz": "UTC"},
            headers=auth_headers(USER),
        )
    assert response.status_code == 200, response.text
    total = response.json()["data"]["total"]
    # COD orders: completed, delivered, shipped, recent completed count; archived ones too.
    assert (total["orders"], total["cancelledOrders"], total["returnedOrders"]) == (4, 1, 1)
    assert total["failedOrders"] == 1


async def test_worker_job_reads_order_archive_after_days(
    orders_api: httpx.AsyncClient,
    session_factory: SessionFactory,
    database_url: str,
    redis_url: str,
) -> None:
    await store_orders(session_factory)
    settings = make_settings(database_url, redis_url, ORDER_ARCHIVE_AFTER_DAYS=195)
    context = WorkerContext.create(settings)
    try:
        assert await archive_orders({"app": context}) == 3  # type: ignore[typeddict-item]
    finally:
        await context.close()
    rows = await stored(session_factory)
    assert {ref for ref, row in rows.items() if row["archived_at"]} == {
        "OLD-COMPLETED",
        "OLD-RETURNED",
        "OLD-FAILED",
    }


async def test_archive_command_runs_the_job_once(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory, database_url: str
) -> None:
    await store_orders(session_factory)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "ORDER_ARCHIVE_AFTER_DAYS": "180",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "archive",
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert "Archived 5 finished order(s) placed more than 180 days ago." in out.decode()
    rows = await stored(session_factory)
    assert {ref for ref, row in rows.items() if row["archived_at"]} == ARCHIVED


@pytest.mark.parametrize("value", ["0", "-3", "soon"])
def test_order_archive_after_days_must_be_a_positive_number(value: str) -> None:
    with pytest.raises(ValueError, match="ORDER_ARCHIVE_AFTER_DAYS"):
        Settings(ORDER_ARCHIVE_AFTER_DAYS=value)
