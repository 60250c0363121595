"""A scrape after syncs shows them. Needs the lead's hooks: `record_sync` in the sync engine's
`_finish` and `record_marketplace_call` in `PlatformTransport.request` (see the report)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import RunningSandbox, alter_connection
from tests.metrics.conftest import matching, scrape, value
from tests.sync.conftest import connect_shop, sync

pytestmark = pytest.mark.usefixtures("worker")


async def test_scrape_after_a_sync_shows_its_run_orders_and_calls(
    api: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    connection, _ = await connect_shop(api, sandbox, "shopee", order_count=30)
    summary = (await sync(api, connection)).json()["data"]
    assert summary["status"] == "success"

    samples = await scrape(api)
    assert value(samples, "omni_sync_runs_total", platform="shopee", status="success") == 1
    stored = summary["ordersCreated"] + summary["ordersUpdated"]
    assert value(samples, "omni_orders_stored_total", platform="shopee") == stored == 30
    calls = matching(samples, "omni_marketplace_calls_total", platform="shopee", outcome="ok")
    endpoints = {dict(labels)["endpoint"] for labels in calls}
    # The sandbox serves Shopee under /shopee; the path after it is Shopee's own.
    assert any(endpoint.endswith("/api/v2/order/get_order_list") for endpoint in endpoints)
    assert sum(calls.values()) >= 2  # the list and the detail calls
    assert (
        value(
            samples,
            "omni_http_requests_total",
            method="POST",
            route="/api/marketplace/sync-orders",
            status="200",
        )
        == 1
    )
    lag = value(samples, "omni_connection_sync_lag_seconds", platform="shopee")
    assert 0 <= lag < 60


async def test_a_failed_sync_is_counted_with_its_failed_calls(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, _ = await connect_shop(api, sandbox, "shopee", order_count=5)
    await alter_connection(
        session_factory, connection["id"], api_secret_encrypted="a-partner-key-that-signs-wrong"
    )
    assert (await sync(api, connection)).json()["data"]["status"] == "failed"

    samples = await scrape(api)
    assert value(samples, "omni_sync_runs_total", platform="shopee", status="failed") == 1
    assert value(samples, "omni_sync_runs_total", platform="shopee", status="success") == 0
    refused = matching(samples, "omni_marketplace_calls_total", platform="shopee")
    assert {dict(labels)["outcome"] for labels in refused} - {"ok"}


async def test_a_tiktok_sync_is_counted_like_the_others(
    api: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    connection, _ = await connect_shop(api, sandbox, "tiktok", order_count=12)
    summary = (await sync(api, connection)).json()["data"]
    assert summary["status"] == "success"

    samples = await scrape(api)
    assert value(samples, "omni_sync_runs_total", platform="tiktok", status="success") == 1
    assert value(samples, "omni_orders_stored_total", platform="tiktok") == 12
    calls = matching(samples, "omni_marketplace_calls_total", platform="tiktok", outcome="ok")
    endpoints = {dict(labels)["endpoint"] for labels in calls}
    assert any(endpoint.endswith("/orders/search") for endpoint in endpoints), endpoints
    assert 0 <= value(samples, "omni_connection_sync_lag_seconds", platform="tiktok") < 60
