"""Schedules: due syncs start once however many schedulers run, and the daily reconcile
repairs what the incremental path missed."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from arq.connections import ArqRedis
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.models import MarketplaceConnection, MarketplaceOrder, MarketplaceSyncLog
from app.sync.tasks import reconcile_all, schedule_due_syncs
from app.worker_context import WorkerContext
from tests.conftest import RunningSandbox, alter_connection, run_burst
from tests.sync.conftest import connect_shop, sync


async def test_two_schedulers_start_each_due_sync_once(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    settings: Settings,
    redis: ArqRedis,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    ids = []
    for _ in range(6):
        connection, _ = await connect_shop(api, sandbox, "lazada", order_count=3)
        ids.append(connection["id"])
        await alter_connection(
            session_factory, connection["id"], next_sync_at=datetime.now(UTC) - timedelta(1)
        )
    contexts = [WorkerContext.create(settings, redis=redis) for _ in range(2)]
    try:
        started = await asyncio.gather(
            *(schedule_due_syncs({"app": wc, "redis": redis}) for wc in contexts)
        )
    finally:
        for wc in contexts:
            await wc.close()
    assert sum(started) == 6
    await run_burst(settings)
    async with session_factory() as session:
        logs = (await session.scalars(select(MarketplaceSyncLog))).all()
    assert sorted(str(log.connection_id) for log in logs) == sorted(ids)
    assert {(log.trigger, log.status) for log in logs} == {("schedule", "success")}


async def test_reauth_required_connections_are_not_scheduled(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    job_context: dict[str, Any],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, _ = await connect_shop(api, sandbox, "shopee", order_count=3)
    await alter_connection(
        session_factory,
        connection["id"],
        status="reauth_required",
        status_reason="refresh token expired",
        next_sync_at=datetime.now(UTC) - timedelta(minutes=1),
    )
    assert await schedule_due_syncs(job_context) == 0


async def test_reconcile_repairs_an_order_whose_change_was_missed(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    worker: None,
    job_context: dict[str, Any],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, _ = await connect_shop(api, sandbox, "shopee", order_count=40, days=2)
    assert (await sync(api, connection)).json()["data"]["status"] == "success"
    cid = uuid.UUID(connection["id"])
    # A change that neither a push nor the incremental window brought in: the stored copy is
    # an older state, and the high-water mark is already past it.
    async with session_factory() as session:
        victim = await session.scalar(
            select(MarketplaceOrder).where(MarketplaceOrder.connection_id == cid).limit(1)
        )
        assert victim is not None
        real_status, real_updated = victim.status, victim.order_updated_at
        await session.execute(
            update(MarketplaceOrder)
            .where(MarketplaceOrder.id == victim.id)
            .values(
                status="unknown",
                order_updated_at=real_updated - timedelta(hours=1),
                content_hash=b"0" * 16,
            )
        )
        await session.commit()

    assert await reconcile_all(job_context) == 1
    log = None
    for _ in range(200):
        await asyncio.sleep(0.05)
        async with session_factory() as session:
            log = await session.scalar(
                select(MarketplaceSyncLog).where(MarketplaceSyncLog.trigger == "reconcile")
            )
        if log is not None and log.status != "running":
            break
    async with session_factory() as session:
        repaired = await session.get(MarketplaceOrder, victim.id, populate_existing=True)
        total = await session.scalar(
            select(func.count()).where(MarketplaceOrder.connection_id == cid)
        )
        row = await session.get(MarketplaceConnection, cid)
    assert log is not None and log.status == "success"
    assert log.orders_updated == 1 and log.orders_created == 0
    assert log.details["repaired"] == {"created": 0, "updated": 1}
    assert repaired is not None and repaired.status == real_status
    assert repaired.order_updated_at == real_updated
    assert total == 40 and row is not None
