"""Push rounds: no transaction open while a marketplace answers, read-back of the pushed items
only, and the sweep that retries failed and drifted pushes (never a refused one)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.inventory.requests import PUSH_JOB
from app.inventory.tasks import push_stock, sweep_pending_pushes
from app.sandbox.common import Faults
from tests.conftest import RunningSandbox
from tests.inventory.helpers import SKU, eventually, inventory, ledger, set_stock, settled
from tests.products.helpers import (
    connect,
    sandbox_shop,
    sandbox_stock,
    stock_worker,
    sync_products,
)

LAZADA_STOCK_UPDATE = "/product/stock/sellable/update"
LAZADA_PRODUCTS = "/products/get"


@dataclass
class Backend:
    state: str
    holds_advisory_lock: bool


async def service_backends(engine: AsyncEngine) -> list[Backend]:
    """The service's own database connections (not this test's) and what each is doing."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT a.state, EXISTS (SELECT 1 FROM pg_locks k WHERE k.pid = a.pid "
                "AND k.locktype = 'advisory' AND k.granted) AS holds_lock "
                "FROM pg_stat_activity a WHERE a.datname = current_database() "
                "AND a.application_name = 'omni-sales' AND a.pid <> pg_backend_pid()"
            )
        )
        return [Backend(row.state or "", row.holds_lock) for row in rows]


async def nothing_pending(session_factory: async_sessionmaker[AsyncSession]) -> bool:
    async with session_factory() as session:
        pending = await session.scalar(
            text("SELECT count(*) FROM marketplace_stock_levels WHERE push_status = 'pending'")
        )
    return pending == 0


async def push_state(
    session_factory: async_sessionmaker[AsyncSession], connection_id: str
) -> tuple[str, int, bool]:
    """(status, attempts, retry scheduled) of the SKU's listing on that connection."""
    async with session_factory() as session:
        row = (
            await session.execute(
                text(
                    "SELECT push_status, push_attempts, push_retry_at IS NOT NULL AS retry "
                    "FROM marketplace_stock_levels WHERE connection_id = :c AND sku = :sku"
                ),
                {"c": connection_id, "sku": SKU},
            )
        ).one()
    return row.push_status, row.push_attempts, row.retry


async def test_a_push_round_holds_no_transaction_open_while_the_marketplace_answers(
    stock_api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None, engine: AsyncEngine
) -> None:
    connection, credentials = await connect(stock_api, sandbox, "lazada")
    await sync_products(stock_api, connection)
    await settled(stock_api)
    lazada = sandbox.sandboxes.lazada
    before = {path: lazada.calls[path] for path in (LAZADA_STOCK_UPDATE, LAZADA_PRODUCTS)}
    # Each call now waits in the sandbox: long enough to look at the database meanwhile.
    lazada.faults.latency_seconds = 0.4

    await set_stock(stock_api, available=42)

    during: dict[str, list[Backend]] = {}
    for path in (LAZADA_STOCK_UPDATE, LAZADA_PRODUCTS):  # the push, then its read-back
        await eventually(lambda p=path: lazada.calls[p] > before[p])
        during[path] = await service_backends(engine)
    lazada.faults.latency_seconds = 0.0
    row = await settled(stock_api)
    assert row["listings"][0]["pushStatus"] == "ok"
    assert sandbox_stock(sandbox, "lazada", credentials["shopId"], SKU) == 42
    for path, backends in during.items():
        assert [b.state for b in backends if b.holds_advisory_lock] == ["idle"], path
        assert not [b for b in backends if b.state.startswith("idle in transaction")], path


@pytest.mark.parametrize("platform", ["shopee", "lazada", "facebook"])
async def test_a_push_round_reads_back_only_the_listings_it_pushed(
    stock_api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    worker: None,
    session_factory: async_sessionmaker[AsyncSession],
    platform: str,
) -> None:
    # 120 products: the catalogue takes several pages on every platform.
    connection, credentials = await connect(stock_api, sandbox, platform, productCount=120)
    await sync_products(stock_api, connection)
    await eventually(lambda: nothing_pending(session_factory))
    calls = _calls(sandbox, platform)
    before = dict(calls)

    await set_stock(stock_api, available=17)

    row = await settled(stock_api)
    assert row["listings"][0]["pushStatus"] == "ok"
    assert sandbox_stock(sandbox, platform, credentials["shopId"], SKU) == 17
    made = {path: calls[path] - before.get(path, 0) for path in calls}
    made = {path: count for path, count in made.items() if count}
    if platform == "shopee":
        # One item: its base info and its models; the item list is never paged.
        assert made.get("/api/v2/product/get_item_list", 0) == 0
        assert made["/api/v2/product/get_item_base_info"] == 1
        assert made.get("/api/v2/product/get_model_list", 0) <= 1
    elif platform == "lazada":
        assert made[LAZADA_PRODUCTS] == 1
    else:
        assert made["products"] == 1


def _calls(sandbox: RunningSandbox, platform: str) -> Any:
    state = getattr(sandbox.sandboxes, platform)
    return state.calls


def _outage(kind: str) -> Callable[[Faults], None]:
    def server_errors(faults: Faults) -> None:
        faults.server_error_rate = 1.0

    def not_applied(faults: Faults) -> None:
        faults.ignore_stock_updates = True

    return server_errors if kind == "failed" else not_applied


@pytest.mark.parametrize("status", ["failed", "drift"])
async def test_the_sweep_retries_a_failed_or_drifted_push_until_it_succeeds(
    stock_api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    job_context: dict[str, Any],
    redis: ArqRedis,
    status: str,
) -> None:
    async with stock_worker(settings):
        connection, credentials = await connect(stock_api, sandbox, "lazada")
        await sync_products(stock_api, connection)
        await settled(stock_api)
    # From here no worker runs: a retry the round queued for itself is lost (as with a
    # worker killed or Redis restarted); only the sweep can bring the listing back.
    lazada = sandbox.sandboxes.lazada
    connection_id = connection["id"]
    _outage(status)(lazada.faults)
    await set_stock(stock_api, available=23)
    await push_stock(job_context, connection_id)  # type: ignore[arg-type]
    assert (await push_state(session_factory, connection_id))[:2] == (status, 1)

    # Still down when the sweep brings it back: it fails again and is kept for later.
    await eventually(lambda: sweep_pending_pushes(job_context))  # type: ignore[arg-type]
    await eventually(lambda: _push_job_queued(redis, connection_id))
    await push_stock(job_context, connection_id)  # type: ignore[arg-type]
    assert await push_state(session_factory, connection_id) == (status, 2, True)

    lazada.faults.reset()
    await eventually(lambda: sweep_pending_pushes(job_context))  # type: ignore[arg-type]
    await push_stock(job_context, connection_id)  # type: ignore[arg-type]

    assert await push_state(session_factory, connection_id) == ("ok", 0, False)
    assert sandbox_stock(sandbox, "lazada", credentials["shopId"], SKU) == 23
    assert await sweep_pending_pushes(job_context) == 0  # type: ignore[arg-type]
    pushes = [e for e in await ledger(stock_api) if e["kind"] == "push" and e["quantity"] == 23]
    assert len(pushes) == 3


async def _push_job_queued(redis: ArqRedis, connection_id: str) -> bool:
    return any(
        job.function == PUSH_JOB and tuple(job.args) == (connection_id,)
        for job in await redis.queued_jobs()
    )


async def test_a_push_the_platform_refuses_for_good_is_not_retried_until_the_figure_changes(
    stock_api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    job_context: dict[str, Any],
) -> None:
    async with stock_worker(settings):
        connection, credentials = await connect(stock_api, sandbox, "lazada")
        await sync_products(stock_api, connection)
        await settled(stock_api)
    lazada = sandbox.sandboxes.lazada
    connection_id = connection["id"]
    # The seller renamed the SKU on Lazada: Lazada no longer knows the one we push.
    _, variation = sandbox_shop(sandbox, "lazada", credentials["shopId"]).variation_by_sku(SKU)
    variation.sku = "RENAMED-ON-LAZADA"
    calls = lazada.calls[LAZADA_STOCK_UPDATE]

    await set_stock(stock_api, available=5)
    await push_stock(job_context, connection_id)  # type: ignore[arg-type]

    listing = (await inventory(stock_api))["listings"][0]
    assert listing["pushStatus"] == "failed" and "SELLER_SKU_NOT_FOUND" in listing["message"]
    assert await push_state(session_factory, connection_id) == ("failed", 1, False)
    assert await sweep_pending_pushes(job_context) == 0  # type: ignore[arg-type]
    await push_stock(job_context, connection_id)  # type: ignore[arg-type]  # a stray round
    assert lazada.calls[LAZADA_STOCK_UPDATE] == calls + 1
    assert (await inventory(stock_api))["listings"][0]["pushStatus"] == "failed"

    # A new figure is pushed again (and, the SKU restored, lands).
    variation.sku = SKU
    await set_stock(stock_api, available=6)
    await push_stock(job_context, connection_id)  # type: ignore[arg-type]
    assert lazada.calls[LAZADA_STOCK_UPDATE] == calls + 2
    assert await push_state(session_factory, connection_id) == ("ok", 0, False)
    assert sandbox_stock(sandbox, "lazada", credentials["shopId"], SKU) == 6


async def test_a_figure_set_while_a_round_pushes_the_previous_one_is_pushed_after_it(
    stock_api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None
) -> None:
    connection, credentials = await connect(stock_api, sandbox, "lazada")
    await sync_products(stock_api, connection)
    await settled(stock_api)
    lazada = sandbox.sandboxes.lazada
    before = lazada.calls[LAZADA_STOCK_UPDATE]
    lazada.faults.latency_seconds = 0.3
    await set_stock(stock_api, available=30)
    await eventually(lambda: lazada.calls[LAZADA_STOCK_UPDATE] > before)

    await set_stock(stock_api, available=31)  # while 30 is on its way

    lazada.faults.latency_seconds = 0.0
    row = await settled(stock_api)
    assert row["listings"][0]["pushStatus"] == "ok"
    assert row["listings"][0]["pushedStock"] == 31
    assert sandbox_stock(sandbox, "lazada", credentials["shopId"], SKU) == 31
    pushed = [e["quantity"] for e in await ledger(stock_api) if e["kind"] == "push"]
    assert pushed[-2:] == [30, 31]


async def test_the_sweep_takes_a_listing_left_pending_past_its_lease(
    stock_api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    job_context: dict[str, Any],
    redis: ArqRedis,
) -> None:
    async with stock_worker(settings):
        connection, credentials = await connect(stock_api, sandbox, "lazada")
        await sync_products(stock_api, connection)
        await settled(stock_api)
    connection_id = connection["id"]
    await set_stock(stock_api, available=12)
    await eventually(lambda: _push_job_queued(redis, connection_id))
    await redis.flushdb()  # the job is lost

    # Within its lease a pending listing is a round's (or its job's) to push, not the sweep's.
    assert await sweep_pending_pushes(job_context) == 0  # type: ignore[arg-type]
    async with session_factory() as session:
        await session.execute(
            text(
                "UPDATE marketplace_stock_levels SET push_lease_until = now() - interval '1 s' "
                "WHERE connection_id = :c AND push_status = 'pending'"
            ),
            {"c": connection_id},
        )
        await session.commit()
    assert await sweep_pending_pushes(job_context) == 1  # type: ignore[arg-type]
    await eventually(lambda: _push_job_queued(redis, connection_id))
    await push_stock(job_context, connection_id)  # type: ignore[arg-type]

    assert await push_state(session_factory, connection_id) == ("ok", 0, False)
    assert sandbox_stock(sandbox, "lazada", credentials["shopId"], SKU) == 12
