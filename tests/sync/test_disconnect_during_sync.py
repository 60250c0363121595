"""Disconnecting stops the connection's running jobs: a sync checks the connection under a
short lock in every batch and stops once it is disconnected, so an erasure asked for during a
sync is never undone by it; and the DELETE never answers 500, even when it deadlocks."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.models import MarketplaceConnection, MarketplaceOrder, MarketplaceSyncLog
from app.models.enums import SyncTrigger
from app.models.order import HOLDS_BUYER_DATA_SQL
from app.products import service as products
from app.worker_context import WorkerContext
from tests.conftest import RunningSandbox, auth_headers
from tests.sync.conftest import connect_shop, control, sync
from tests.sync.test_worker_resilience import (
    finished,
    order_count,
    quick_api,  # noqa: F401 (fixture)
    saved_a_page,
    start_slow_sync,
    wait_for_log,
)

SessionFactory = async_sessionmaker[AsyncSession]


async def holding_buyer_data(session_factory: SessionFactory, connection_id: str) -> int:
    async with session_factory() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(MarketplaceOrder)
            .where(
                MarketplaceOrder.connection_id == uuid.UUID(connection_id),
                text(HOLDS_BUYER_DATA_SQL),
            )
        )
    return int(count or 0)


async def disconnect(
    api: httpx.AsyncClient, connection: dict[str, Any], **params: str
) -> httpx.Response:
    return await api.delete(
        f"/api/marketplace/connections/{connection['id']}",
        params={"userId": connection["userId"], **params},
        headers=auth_headers(connection["userId"]),
    )


async def test_erasure_during_a_running_sync_is_not_undone_by_it(
    api: httpx.AsyncClient,
    quick_api: httpx.AsyncClient,  # noqa: F811
    sandbox: RunningSandbox,
    session_factory: SessionFactory,
    worker: None,
) -> None:
    connection, log_id = await start_slow_sync(api, quick_api, sandbox)
    log = await wait_for_log(session_factory, log_id, saved_a_page, 60)
    assert not finished(log), "the sync ended before the disconnect could race it"
    assert await order_count(session_factory, connection["id"]) > 0

    response = await disconnect(api, connection, eraseBuyerData="true")
    assert response.status_code == 204, response.text
    log = await wait_for_log(session_factory, log_id, finished, 60)
    await control(sandbox, "lazada", "faults", {"reset": True})

    # The sync stopped at its next batch and wrote no buyer data back.
    assert log.status == "failed"
    assert log.error_message is not None and "disconnected" in log.error_message
    assert await holding_buyer_data(session_factory, connection["id"]) == 0
    assert await order_count(session_factory, connection["id"]) < 600
    async with session_factory() as session:
        row = await session.get(MarketplaceConnection, uuid.UUID(connection["id"]))
    assert row is not None and row.status == "disconnected"


async def test_a_sync_of_a_disconnected_connection_stops_before_any_call(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: SessionFactory,
    worker_context: WorkerContext,
    worker: None,
) -> None:
    """A sync queued before the disconnect (or re-queued by the recovery sweep) runs after it:
    it stores nothing and closes its log."""
    connection, _ = await connect_shop(api, sandbox, "shopee", order_count=20)
    from app.sync.engine import run_sync

    async with session_factory() as session:
        log = MarketplaceSyncLog(
            id=uuid.uuid4(),
            connection_id=uuid.UUID(connection["id"]),
            user_id=connection["userId"],
            kind="orders",
            status="running",
            trigger="manual",
            details={},
            checkpoint={},
        )
        session.add(log)
        await session.commit()
    assert (await disconnect(api, connection)).status_code == 204
    assert await run_sync(worker_context, log.id) == "failed"
    assert await order_count(session_factory, connection["id"]) == 0
    async with session_factory() as session:
        stored = await session.get(MarketplaceSyncLog, log.id)
    assert stored is not None and stored.error_message is not None
    assert "disconnected" in stored.error_message


async def test_a_product_sync_of_a_disconnected_connection_stores_nothing(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: SessionFactory,
    worker_context: WorkerContext,
    settings: Settings,
) -> None:
    connection, _ = await connect_shop(api, sandbox, "shopee")
    async with session_factory() as session:
        row = await session.get(MarketplaceConnection, uuid.UUID(connection["id"]))
        assert row is not None
        log = await products.create_product_sync(
            session, row, stale_after=timedelta(minutes=5), trigger=SyncTrigger.MANUAL
        )
        await session.commit()
    assert (await disconnect(api, connection)).status_code == 204
    assert await products.run_product_sync(worker_context, log.id) == "failed"
    async with session_factory() as session:
        stored = await session.get(MarketplaceSyncLog, log.id)
        listings = await session.scalar(
            text("SELECT count(*) FROM marketplace_stock_levels WHERE connection_id = :c"),
            {"c": uuid.UUID(connection["id"])},
        )
    assert stored is not None and stored.status == "failed"
    assert stored.error_message is not None and "disconnected" in stored.error_message
    assert listings == 0


async def test_disconnect_that_deadlocks_is_retried_never_500(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: SessionFactory,
    engine: AsyncEngine,
    worker: None,
) -> None:
    """Another transaction holds one of the connection's orders and then asks for the
    connection's row, which the DELETE holds while it waits for that order: a deadlock.
    PostgreSQL aborts one of them; the DELETE answers 204 with everything erased (or 409 with
    nothing changed), never 500."""
    connection, _ = await connect_shop(api, sandbox, "shopee", order_count=10)
    assert (await sync(api, connection)).json()["data"]["status"] == "success"
    cid = uuid.UUID(connection["id"])
    async with engine.connect() as other:
        await other.execute(text("SET deadlock_timeout = '20s'"))
        await other.execute(
            text(
                "SELECT id FROM marketplace_orders WHERE connection_id = :c "
                "ORDER BY id DESC LIMIT 1 FOR UPDATE"
            ),
            {"c": cid},
        )
        request = asyncio.create_task(disconnect(api, connection, eraseBuyerData="true"))
        for _ in range(400):  # until the DELETE waits for the order this transaction holds
            await other.execute(text("SELECT pg_stat_clear_snapshot()"))
            waiting = await other.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query LIKE '%marketplace_orders%'"
                )
            )
            if waiting:
                break
            await asyncio.sleep(0.02)
        assert waiting, "the DELETE never waited for the held order"
        with contextlib.suppress(DBAPIError):  # this side was the one PostgreSQL aborted
            await other.execute(
                text("SELECT id FROM marketplace_connections WHERE id = :c FOR UPDATE"),
                {"c": cid},
            )
        await other.rollback()
        response = await request
    assert response.status_code in (204, 409), response.text
    async with session_factory() as session:
        row = await session.get(MarketplaceConnection, cid)
    assert row is not None
    if response.status_code == 204:
        assert row.status == "disconnected"
        assert await holding_buyer_data(session_factory, connection["id"]) == 0
    else:
        assert row.status == "active"
