"""Queue down, worker killed, worker stopped: no request leaves a half-done change behind, and
every sync whose worker went away is finished by a live worker, each order stored once.

Redis is never stopped for real (other tests share it): the code under test reaches it through
a loopback proxy the test cuts, or is pointed at a port nobody listens on."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.jobs import redis_settings
from app.models import MarketplaceConnection, MarketplaceOrder, MarketplaceSyncLog
from tests.conftest import (
    ENCRYPTION_KEY,
    JWT_SECRET,
    RunningSandbox,
    alter_connection,
    auth_headers,
    free_port,
    make_settings,
    running_app,
    running_worker,
)
from tests.sync.conftest import connect_shop, control, sync
from tests.tcp_proxy import TcpProxy

REPOSITORY = Path(__file__).resolve().parents[2]
SLOW_SHOP_ORDERS = 600
SLOW_CALL_SECONDS = 0.03


async def order_count(session_factory: async_sessionmaker[AsyncSession], connection_id: str) -> int:
    async with session_factory() as session:
        count = await session.scalar(
            select(func.count()).where(MarketplaceOrder.connection_id == uuid.UUID(connection_id))
        )
    return int(count or 0)


async def sync_logs(
    session_factory: async_sessionmaker[AsyncSession], connection_id: str
) -> list[MarketplaceSyncLog]:
    async with session_factory() as session:
        rows = await session.scalars(
            select(MarketplaceSyncLog).where(
                MarketplaceSyncLog.connection_id == uuid.UUID(connection_id)
            )
        )
        return list(rows.all())


async def wait_for_log(
    session_factory: async_sessionmaker[AsyncSession],
    log_id: uuid.UUID,
    reached: Callable[[MarketplaceSyncLog], bool],
    seconds: float,
) -> MarketplaceSyncLog:
    """Poll the log until `reached` holds; the last state seen when time is up."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        async with session_factory() as session:
            log = await session.get(MarketplaceSyncLog, log_id)
        assert log is not None
        if reached(log) or asyncio.get_running_loop().time() > deadline:
            return log
        await asyncio.sleep(0.05)


async def wait_for_records(caplog: pytest.LogCaptureFixture, message: str, count: int) -> None:
    for _ in range(200):
        if sum(message in record.getMessage() for record in caplog.records) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never logged {count} x {message!r}")


async def load_log(
    session_factory: async_sessionmaker[AsyncSession], log_id: uuid.UUID
) -> MarketplaceSyncLog:
    async with session_factory() as session:
        log = await session.get(MarketplaceSyncLog, log_id)
    assert log is not None
    return log


def finished(log: MarketplaceSyncLog) -> bool:
    return log.status != "running"


@asynccontextmanager
async def in_process_worker(settings: Settings) -> AsyncIterator[None]:
    """A second, live worker in this event loop (as the `worker` fixture runs one)."""
    async with running_worker(settings, poll_delay=0.05):
        yield


@asynccontextmanager
async def worker_until_stopped(settings: Settings, **kwargs: Any) -> AsyncIterator[Any]:
    """`run_worker_until_stopped` as a task; yields (task, stop). Imported here, not at the top,
    so the tests that do not need it also run against code without it."""
    from app.worker import run_worker_until_stopped

    stop = asyncio.Event()
    task = asyncio.create_task(run_worker_until_stopped(settings, stop, poll_delay=0.05, **kwargs))
    try:
        yield task, stop
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def quick_api(
    database_url: str, redis_url: str, sandbox: RunningSandbox, api: httpx.AsyncClient
) -> AsyncIterator[httpx.AsyncClient]:
    """The API answering a sync request at once (202) instead of waiting for the sync."""
    async with running_app(
        make_settings(database_url, redis_url, sandbox, SYNC_WAIT_SECONDS=0)
    ) as client:
        yield client


async def start_slow_sync(
    api: httpx.AsyncClient,
    quick_api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    orders: int = SLOW_SHOP_ORDERS,
) -> tuple[dict[str, Any], uuid.UUID]:
    connection, _ = await connect_shop(api, sandbox, "lazada", order_count=orders)
    await control(sandbox, "lazada", "faults", {"latency_seconds": SLOW_CALL_SECONDS})
    response = await sync(quick_api, connection)
    assert response.status_code == 202, response.text
    return connection, uuid.UUID(response.json()["data"]["syncLogId"])


def saved_a_page(log: MarketplaceSyncLog) -> bool:
    return log.pages_done >= 1 or finished(log)


async def test_sync_request_with_the_queue_down_is_503_and_leaves_no_log(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    worker: None,
) -> None:
    connection, _ = await connect_shop(api, sandbox, "shopee", order_count=12)
    queue_down = make_settings(database_url, f"redis://127.0.0.1:{free_port()}/0", sandbox)
    async with running_app(queue_down) as no_queue:
        response = await sync(no_queue, connection)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "queue_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    assert await sync_logs(session_factory, connection["id"]) == []

    # Redis is back (this app reaches it): the next request runs at once, no 409 sync_running.
    again = await sync(api, connection)
    assert again.status_code == 200, again.text
    assert again.json()["data"]["status"] == "success"
    assert again.json()["data"]["ordersCreated"] == 12
    assert await order_count(session_factory, connection["id"]) == 12


async def test_reauthorizing_patch_with_the_queue_down_changes_nothing(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    worker: None,
) -> None:
    connection, credentials = await connect_shop(api, sandbox, "lazada", order_count=15)
    await alter_connection(
        session_factory,
        connection["id"],
        status="reauth_required",
        status_reason="Token revoked",
        access_token_encrypted="revoked-token",
    )

    async def stored_row() -> tuple[Any, ...]:
        async with session_factory() as session:
            row = await session.get(MarketplaceConnection, uuid.UUID(connection["id"]))
            assert row is not None
            return (
                row.status,
                row.status_reason,
                row.api_key_encrypted,
                row.api_secret_encrypted,
                row.access_token_encrypted,
                row.refresh_token_encrypted,
                row.access_token_expires_at,
            )

    before = await stored_row()
    url = f"/api/marketplace/connections/{connection['id']}"
    body = {"credentials": {"accessToken": credentials["accessToken"]}}
    queue_down = make_settings(database_url, f"redis://127.0.0.1:{free_port()}/0", sandbox)
    async with running_app(queue_down) as no_queue:
        response = await no_queue.patch(url, json=body, headers=auth_headers("seller-1"))
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "queue_unavailable"
    assert "Retry-After" in response.headers
    assert await stored_row() == before
    assert await sync_logs(session_factory, connection["id"]) == []

    response = await api.patch(url, json=body, headers=auth_headers("seller-1"))
    assert response.status_code == 200, response.text
    assert response.json()["data"]["status"] == "active"
    logs = await sync_logs(session_factory, connection["id"])
    assert [log.trigger for log in logs] == ["catch_up"]
    log = await wait_for_log(session_factory, logs[0].id, finished, 20)
    assert (log.status, log.orders_created) == ("success", 15)


async def test_worker_waits_out_a_redis_outage_and_carries_on(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    database_url: str,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="app.worker")
    connection, _ = await connect_shop(api, sandbox, "facebook", order_count=20)
    async with TcpProxy.to_url(redis_url) as proxy:
        settings = make_settings(database_url, proxy.url(redis_url), sandbox)
        async with worker_until_stopped(settings) as (task, stop):
            first = await sync(api, connection)
            assert first.json()["data"]["status"] == "success", first.text

            await proxy.close()
            await wait_for_records(caplog, "redis unavailable", 2)
            assert not task.done()
            await proxy.start()

            second = await sync(api, connection, full=True)
            assert second.status_code == 200, second.text
            assert second.json()["data"]["status"] == "success"
            assert second.json()["data"]["ordersUnchanged"] == 20

            stop.set()
            await asyncio.wait_for(task, timeout=10)
            assert task.exception() is None


async def test_worker_started_with_redis_down_keeps_trying_and_then_works(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    database_url: str,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="app.worker")
    connection, _ = await connect_shop(api, sandbox, "shopee", order_count=20)
    proxy = TcpProxy.to_url(redis_url)  # not listening yet: Redis is "down"
    settings = make_settings(database_url, proxy.url(redis_url), sandbox)
    # No connection retries inside arq's create_pool, so the worker's own retry loop is what
    # outlasts the outage (arq gives up after 5 tries and a longer outage is common).
    no_retries = dataclasses.replace(redis_settings(proxy.url(redis_url)), conn_retries=0)
    try:
        async with worker_until_stopped(settings, redis_settings=no_retries) as (task, stop):
            await wait_for_records(caplog, "redis unavailable at start", 2)
            assert not task.done()
            await proxy.start()

            response = await sync(api, connection)
            assert response.status_code == 200, response.text
            assert response.json()["data"]["ordersCreated"] == 20

            stop.set()
            await asyncio.wait_for(task, timeout=10)
    finally:
        await proxy.close()


def worker_environment(
    database_url: str, redis_url: str, sandbox: RunningSandbox
) -> dict[str, str]:
    """What `make_settings` gives the in-process worker, as a worker process reads it."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "AUTH_JWT_SECRET": JWT_SECRET,
        "CREDENTIALS_ENCRYPTION_KEYS": ENCRYPTION_KEY,
        "SYNC_WAIT_SECONDS": "20",
        "SYNC_STALE_SECONDS": "10",
        "MARKETPLACE_CALLS_PER_SECOND": "1000",
        "MARKETPLACE_BACKOFF_BASE": "0.01",
        "MARKETPLACE_BACKOFF_CAP": "0.05",
        "MARKETPLACE_MAX_ATTEMPTS": "8",
        "LOG_LEVEL": "WARNING",
        # The code of this checkout, whichever tree the virtualenv was installed from.
        "PYTHONPATH": str(REPOSITORY),
        **sandbox.settings,
    }


@dataclasses.dataclass
class WorkerProcess:
    process: asyncio.subprocess.Process
    log: IO[bytes]

    def output(self) -> str:
        """The tail of what the process wrote, for failure messages."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]


@asynccontextmanager
async def worker_process(environment: dict[str, str]) -> AsyncIterator[WorkerProcess]:
    """`omni-sales worker` as its own process."""
    with tempfile.TemporaryFile() as log:
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "omni-sales"),
            "worker",
            env=environment,
            cwd=REPOSITORY,
            stdout=log,
            stderr=log,
        )
        try:
            yield WorkerProcess(process, log)
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()


async def test_sync_of_a_killed_worker_is_resumed_by_a_live_worker(
    api: httpx.AsyncClient,
    quick_api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    database_url: str,
    redis_url: str,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with worker_process(worker_environment(database_url, redis_url, sandbox)) as worker:
        connection, log_id = await start_slow_sync(api, quick_api, sandbox)
        log = await wait_for_log(session_factory, log_id, saved_a_page, 30)
        assert log.status == "running" and log.pages_done >= 1, worker.output()
        worker.process.send_signal(signal.SIGKILL)
        await worker.process.wait()
    assert 0 < await order_count(session_factory, connection["id"]) < SLOW_SHOP_ORDERS

    await control(sandbox, "lazada", "faults", {"latency_seconds": 0})
    stale_after_10 = make_settings(database_url, redis_url, sandbox, SYNC_STALE_SECONDS=10)
    async with in_process_worker(stale_after_10):
        # No request: the recovery sweep finds the run dead (no heartbeat, lock free) and a
        # live worker resumes it. Heartbeat age 5 s plus a 10 s sweep period, plus the rest.
        log = await wait_for_log(session_factory, log_id, finished, 30)
    assert log.status == "success", (log.status, log.error_message, log.details)
    assert log.details["resumes"] >= 1
    assert log.orders_created == SLOW_SHOP_ORDERS
    assert await order_count(session_factory, connection["id"]) == SLOW_SHOP_ORDERS


async def test_stopped_worker_hands_its_sync_over(
    api: httpx.AsyncClient,
    quick_api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    from app.worker import STOP_GRACE_SECONDS

    async with worker_until_stopped(settings) as (task, stop):
        connection, log_id = await start_slow_sync(api, quick_api, sandbox)
        log = await wait_for_log(session_factory, log_id, saved_a_page, 30)
        assert log.status == "running"
        stop.set()
        await asyncio.wait_for(task, timeout=STOP_GRACE_SECONDS)
    log = await load_log(session_factory, log_id)
    assert (log.status, log.finished_at, log.error_message) == ("running", None, None)
    assert log.pages_done >= 1
    stored = await order_count(session_factory, connection["id"])
    assert 0 < stored < SLOW_SHOP_ORDERS

    # SYNC_STALE_SECONDS is 120 here, so the recovery sweep cannot be what finishes it: the
    # stopped worker queued the rest for the next worker.
    await control(sandbox, "lazada", "faults", {"latency_seconds": 0})
    async with in_process_worker(settings):
        log = await wait_for_log(session_factory, log_id, finished, 20)
    assert log.status == "success", (log.status, log.error_message)
    assert log.details["resumes"] >= 1
    assert log.orders_created == SLOW_SHOP_ORDERS
    assert await order_count(session_factory, connection["id"]) == SLOW_SHOP_ORDERS


async def test_worker_process_started_with_redis_down_waits_for_it(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    database_url: str,
    redis_url: str,
) -> None:
    connection, _ = await connect_shop(api, sandbox, "facebook", order_count=10)
    proxy = TcpProxy.to_url(redis_url)
    environment = worker_environment(database_url, proxy.url(redis_url), sandbox)
    try:
        async with worker_process(environment) as worker:
            # Past arq's own five connection attempts a second apart, which used to end it.
            for _ in range(300):
                if (
                    worker.process.returncode is not None
                    or "unavailable at start" in worker.output()
                ):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            assert worker.process.returncode is None, worker.output()
            await proxy.start()
            response = await sync(api, connection)
            assert response.status_code == 200, worker.output()
            assert response.json()["data"]["ordersCreated"] == 10
    finally:
        await proxy.close()


async def test_worker_process_stopped_by_sigterm_hands_its_sync_over(
    api: httpx.AsyncClient,
    quick_api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    settings: Settings,
    database_url: str,
    redis_url: str,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with worker_process(worker_environment(database_url, redis_url, sandbox)) as worker:
        connection, log_id = await start_slow_sync(api, quick_api, sandbox)
        log = await wait_for_log(session_factory, log_id, saved_a_page, 30)
        assert log.status == "running", worker.output()
        worker.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(worker.process.wait(), timeout=25)
        output = worker.output()
    log = await load_log(session_factory, log_id)
    assert (log.status, log.error_message) == ("running", None), output

    await control(sandbox, "lazada", "faults", {"latency_seconds": 0})
    async with in_process_worker(settings):  # SYNC_STALE_SECONDS 120: no sweep in time
        log = await wait_for_log(session_factory, log_id, finished, 20)
    assert log.status == "success", (log.status, log.error_message, output)
    assert await order_count(session_factory, connection["id"]) == SLOW_SHOP_ORDERS


async def test_sync_stopped_twice_is_handed_over_twice(
    api: httpx.AsyncClient,
    quick_api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with worker_until_stopped(settings) as (task, stop):
        # Large enough that neither worker reaches the end before it is stopped.
        connection, log_id = await start_slow_sync(api, quick_api, sandbox, orders=1500)
        first = await wait_for_log(session_factory, log_id, saved_a_page, 30)
        assert first.status == "running"
        stop.set()
        await task
    pages_after_first_stop = (await load_log(session_factory, log_id)).pages_done

    def went_further(log: MarketplaceSyncLog) -> bool:
        return log.pages_done > pages_after_first_stop or finished(log)

    async with worker_until_stopped(settings) as (task, stop):
        second = await wait_for_log(session_factory, log_id, went_further, 30)
        assert second.status == "running"
        stop.set()
        await task
    assert (await load_log(session_factory, log_id)).status == "running"

    await control(sandbox, "lazada", "faults", {"latency_seconds": 0})
    async with in_process_worker(settings):  # SYNC_STALE_SECONDS 120: no sweep in time
        log = await wait_for_log(session_factory, log_id, finished, 20)
    assert log.status == "success", (log.status, log.pages_done, log.details)
    assert log.details["resumes"] >= 2
    assert await order_count(session_factory, connection["id"]) == 1500
