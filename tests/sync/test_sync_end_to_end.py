from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.crypto import CredentialCipher
from app.models import (
    MarketplaceConnection,
    MarketplaceOrder,
    MarketplaceOrderItem,
    MarketplaceSyncLog,
)
from app.sync.engine import run_sync
from app.sync.service import INTERRUPTED
from app.worker_context import WorkerContext
from tests.conftest import ENCRYPTION_KEY, RunningSandbox, alter_connection, auth_headers
from tests.sync.conftest import connect_shop, control, sync

pytestmark = pytest.mark.usefixtures("worker")


async def order_count(session_factory: async_sessionmaker[AsyncSession], connection_id: str) -> int:
    async with session_factory() as session:
        return int(
            await session.scalar(
                select(func.count()).where(
                    MarketplaceOrder.connection_id == uuid.UUID(connection_id)
                )
            )
            or 0
        )


@pytest.mark.parametrize("platform", ["shopee", "lazada", "facebook", "tiktok"])
async def test_full_then_incremental_sync_has_exact_counts(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    platform: str,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, _ = await connect_shop(api, sandbox, platform, order_count=250, days=40)
    first = await sync(api, connection)
    assert first.status_code == 200, first.text
    summary = first.json()["data"]
    assert summary["status"] == "success", summary
    assert summary["ordersFetched"] == 250
    assert summary["ordersCreated"] == 250
    assert summary["ordersUpdated"] == 0
    assert summary["ordersFailed"] == 0
    assert summary["pagesDone"] >= 3
    assert summary["finishedAt"] is not None
    assert await order_count(session_factory, connection["id"]) == 250

    second = (await sync(api, connection)).json()["data"]
    assert second["status"] == "success"
    assert second["ordersCreated"] == 0
    assert second["ordersUpdated"] == 0
    assert second["ordersUnchanged"] == second["ordersFetched"]
    assert second["ordersFetched"] < 250  # incremental: only the overlap is re-read

    listed = await api.get(
        "/api/marketplace/connections", headers=auth_headers(connection["userId"])
    )
    assert listed.json()["data"][0]["lastSyncAt"] is not None


async def test_full_resync_creates_no_duplicates(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, _ = await connect_shop(api, sandbox, "shopee", order_count=120)
    await sync(api, connection)
    again = (await sync(api, connection, full=True)).json()["data"]
    assert (again["ordersCreated"], again["ordersUpdated"], again["ordersUnchanged"]) == (0, 0, 120)
    assert await order_count(session_factory, connection["id"]) == 120
    async with session_factory() as session:
        items = await session.scalar(
            select(func.count())
            .select_from(MarketplaceOrderItem)
            .join(MarketplaceOrder, MarketplaceOrder.id == MarketplaceOrderItem.order_id)
            .where(MarketplaceOrder.connection_id == uuid.UUID(connection["id"]))
        )
    assert items and items >= 120


async def test_changed_orders_are_updated(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, credentials = await connect_shop(api, sandbox, "lazada", order_count=200)
    await sync(api, connection)
    changed = await control(
        sandbox, "lazada", "orders/change", {"shopId": credentials["shopId"], "fraction": 0.05}
    )
    changed_ids = {entry["orderId"] for entry in changed["changed"]}
    # A sync reads updates before its start second; the change must be at least a second old.
    await asyncio.sleep(1.1)
    summary = (await sync(api, connection)).json()["data"]
    assert summary["ordersUpdated"] == len(changed_ids) == 10
    assert summary["ordersCreated"] == 0
    async with session_factory() as session:
        touched = (
            await session.scalars(
                select(MarketplaceOrder.external_order_id).where(
                    MarketplaceOrder.connection_id == uuid.UUID(connection["id"]),
                    MarketplaceOrder.updated_at > MarketplaceOrder.created_at,
                )
            )
        ).all()
    assert set(touched) == changed_ids


async def test_two_concurrent_sync_requests_give_one_sync(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, _ = await connect_shop(api, sandbox, "shopee", order_count=300)
    await control(sandbox, "shopee", "faults", {"latency_seconds": 0.05})
    first, second = await asyncio.gather(sync(api, connection), sync(api, connection))
    statuses = sorted([first.status_code, second.status_code])
    assert statuses[1] == 409 and statuses[0] in (200, 202), (first.text, second.text)
    winner, loser = (first, second) if first.status_code != 409 else (second, first)
    assert loser.json()["error"]["code"] == "sync_running"
    assert loser.json()["error"]["syncLogId"] == winner.json()["data"]["syncLogId"]
    async with session_factory() as session:
        logs = await session.scalar(select(func.count()).select_from(MarketplaceSyncLog))
    assert logs == 1


async def test_faults_mid_sync_still_store_every_order(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, _ = await connect_shop(api, sandbox, "shopee", order_count=400, days=40)
    await control(
        sandbox,
        "shopee",
        "faults",
        {
            "fail_next_rate_limit": 2,
            "fail_next_server_error": 2,
            "malformed_rate": 0.05,
            "expire_tokens_next": 1,
            "seed": 7,
        },
    )
    summary = (await sync(api, connection)).json()["data"]
    assert summary["status"] == "success", summary
    assert summary["ordersCreated"] == 400
    assert await order_count(session_factory, connection["id"]) == 400
    retries = summary["details"]["retries"]
    assert retries.get("rate_limited", 0) >= 2
    assert retries.get("transient", 0) >= 2
    assert summary["details"]["tokenRefreshes"] == 1
    assert summary["details"]["lastRetryError"]


async def test_expired_token_mid_sync_is_refreshed_and_recorded(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, credentials = await connect_shop(api, sandbox, "lazada", order_count=150)
    await control(sandbox, "lazada", "tokens/expire", {"shopId": credentials["shopId"]})
    summary = (await sync(api, connection)).json()["data"]
    assert summary["status"] == "success", summary
    assert summary["details"]["tokenRefreshes"] == 1
    assert await order_count(session_factory, connection["id"]) == 150
    cipher = CredentialCipher([ENCRYPTION_KEY])
    async with session_factory() as session:
        row = await session.get(MarketplaceConnection, uuid.UUID(connection["id"]))
    assert row is not None
    assert cipher.decrypt(row.access_token_encrypted) != credentials["accessToken"]


async def test_refused_refresh_marks_the_connection_for_reauthorization(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, credentials = await connect_shop(api, sandbox, "shopee", order_count=50)
    await alter_connection(
        session_factory, connection["id"], refresh_token_encrypted="revoked-refresh-token"
    )
    await control(sandbox, "shopee", "tokens/expire", {"shopId": credentials["shopId"]})
    summary = (await sync(api, connection)).json()["data"]
    assert summary["status"] == "failed"
    assert summary["errorMessage"]
    listed = (
        await api.get("/api/marketplace/connections", headers=auth_headers(connection["userId"]))
    ).json()["data"][0]
    assert listed["status"] == "reauth_required"
    assert listed["statusReason"] == summary["errorMessage"]
    refused = await sync(api, connection)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "reauth_required"


async def test_permanent_failure_gives_a_failed_log_with_the_platform_message(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, _ = await connect_shop(api, sandbox, "shopee", order_count=80)
    await alter_connection(
        session_factory, connection["id"], api_secret_encrypted="a-partner-key-that-signs-wrong"
    )
    response = await sync(api, connection)
    summary = response.json()["data"]
    assert summary["status"] == "failed"
    assert "sign" in summary["errorMessage"].lower()
    assert summary["ordersCreated"] == 0
    assert await order_count(session_factory, connection["id"]) == 0
    listed = (
        await api.get("/api/marketplace/connections", headers=auth_headers(connection["userId"]))
    ).json()["data"][0]
    assert listed["status"] == "error"


async def test_killed_sync_resumes_and_stores_every_order_once(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    worker_context: WorkerContext,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, _ = await connect_shop(api, sandbox, "lazada", order_count=600, days=30)
    await control(sandbox, "lazada", "faults", {"latency_seconds": 0.03})
    cid = uuid.UUID(connection["id"])
    log_id = uuid.uuid4()
    async with session_factory() as session:
        session.add(
            MarketplaceSyncLog(
                id=log_id,
                connection_id=cid,
                user_id="seller-1",
                status="running",
                details={},
                checkpoint={},
            )
        )
        await session.commit()
    task = asyncio.create_task(run_sync(worker_context, log_id))
    for _ in range(400):
        await asyncio.sleep(0.05)
        async with session_factory() as session:
            log = await session.get(MarketplaceSyncLog, log_id)
            if log and log.pages_done >= 2:
                break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with session_factory() as session:
        log = await session.get(MarketplaceSyncLog, log_id)
        assert log is not None
        # Cancelled (the worker stopped): the log stays running so the job resumes it.
        assert log.status == "running" and log.finished_at is None
        stored_before = await order_count(session_factory, connection["id"])
        assert 0 < stored_before < 600
        connection_row = await session.get(MarketplaceConnection, cid)
        assert connection_row is not None and connection_row.orders_high_water_mark is not None

    await control(sandbox, "lazada", "faults", {"latency_seconds": 0})
    # arq re-runs the cancelled job: it takes over the same log instead of failing.
    assert await run_sync(worker_context, log_id) == "success"
    async with session_factory() as session:
        log = await session.get(MarketplaceSyncLog, log_id)
        assert log is not None
        assert log.details["resumes"] == 1
        assert log.details["resumedFromHighWaterMark"] is not None
        assert log.orders_created == 600
    assert await order_count(session_factory, connection["id"]) == 600


async def test_stale_running_log_does_not_block_a_new_sync(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, _ = await connect_shop(api, sandbox, "facebook", order_count=20)
    dead = uuid.uuid4()
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    async with session_factory() as session:
        session.add(
            MarketplaceSyncLog(
                id=dead,
                connection_id=uuid.UUID(connection["id"]),
                user_id="seller-1",
                status="running",
                started_at=long_ago,
                heartbeat_at=long_ago,
                details={},
                checkpoint={},
            )
        )
        await session.commit()
    summary = (await sync(api, connection)).json()["data"]
    assert summary["status"] == "success"
    async with session_factory() as session:
        old = await session.get(MarketplaceSyncLog, dead)
    assert old is not None and old.status == "failed" and old.error_message == INTERRUPTED


async def test_sync_logs_are_listed_and_private(
    api: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    connection, _ = await connect_shop(api, sandbox, "facebook", order_count=30)
    summary = (await sync(api, connection)).json()["data"]
    one = await api.get(
        f"/api/marketplace/sync-logs/{summary['syncLogId']}", headers=auth_headers("seller-1")
    )
    assert one.status_code == 200
    assert one.json()["data"]["ordersCreated"] == 30
    listed = await api.get(
        "/api/marketplace/sync-logs",
        params={"userId": "seller-1", "connectionId": connection["id"]},
        headers=auth_headers("seller-1"),
    )
    assert [log["syncLogId"] for log in listed.json()["data"]] == [summary["syncLogId"]]
    assert listed.json()["pagination"]["total"] == 1
    other = await api.get(
        f"/api/marketplace/sync-logs/{summary['syncLogId']}", headers=auth_headers("seller-2")
    )
    assert other.status_code == 404
    theirs = await api.post(
        "/api/marketplace/sync-orders",
        json={"connectionId": connection["id"], "userId": "seller-2"},
        headers=auth_headers("seller-2"),
    )
    assert theirs.status_code == 404


async def test_bad_sync_bodies_name_the_field(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/marketplace/sync-orders",
        json={"connectionId": "not-a-uuid", "userId": "seller-1"},
        headers=auth_headers("seller-1"),
    )
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["error"]["fields"]] == ["connectionId"]


async def test_reauthorizing_a_connection_triggers_a_catch_up_sync(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, credentials = await connect_shop(api, sandbox, "lazada", order_count=40)
    await alter_connection(
        session_factory, connection["id"], status="reauth_required", status_reason="Token revoked"
    )
    response = await api.patch(
        f"/api/marketplace/connections/{connection['id']}",
        json={"credentials": {"accessToken": credentials["accessToken"]}},
        headers=auth_headers("seller-1"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["status"] == "active"
    for _ in range(200):
        async with session_factory() as session:
            log = await session.scalar(select(MarketplaceSyncLog))
        if log is not None and log.status != "running":
            break
        await asyncio.sleep(0.05)
    assert log is not None
    assert (log.trigger, log.status, log.orders_created) == ("catch_up", "success", 40)
