"""The whole path over real HTTP: the sandbox sends a signed push to the API on a loopback port,
the real arq worker processes it, and the orders API shows the change."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn

from app.config import Settings
from app.main import create_app
from tests.conftest import RunningSandbox, auth_headers, free_port
from tests.sync.conftest import connect_shop, control, sync

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
async def api_server(settings: Settings, clean: None) -> AsyncIterator[str]:
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    app = create_app(settings.model_copy(update={"public_base_url": root}))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield root
    server.should_exit = True
    await task


@pytest.mark.parametrize("platform", ["shopee", "lazada", "tiktok"])
async def test_a_pushed_change_reaches_the_orders_api_within_five_seconds(
    api: httpx.AsyncClient, sandbox: RunningSandbox, api_server: str, platform: str
) -> None:
    connection, credentials = await connect_shop(api, sandbox, platform, order_count=40)
    assert (await sync(api, connection)).status_code in (200, 202)
    headers = auth_headers("seller-1")
    await _wait_for_orders(api, headers, 40)
    changed = await control(
        sandbox,
        platform,
        "orders/change",
        {"shopId": credentials["shopId"], "fraction": 0.05, "status": "cancelled"},
    )
    order_ids = [c["orderId"] for c in changed["changed"]]

    started = time.monotonic()
    sent = await control(
        sandbox,
        platform,
        "webhooks/send",
        {
            "shopId": credentials["shopId"],
            "url": api_server + "/api/webhooks/marketplace",
            "orderIds": order_ids,
        },
    )
    codes = [r["statusCode"] for r in sent["results"]] if platform == "shopee" else sent["statuses"]
    assert set(codes) == {200}
    while True:
        orders = await _orders(api, headers)
        if all(orders[o]["status"] == "cancelled" for o in order_ids):
            break
        assert time.monotonic() - started < 5, "the pushed change did not arrive in 5 s"
        await asyncio.sleep(0.05)
    # Events whose order a batch already stored may still be waiting for their own job.
    while True:
        events = await api.get("/api/marketplace/webhooks", headers=headers)
        statuses = {e["status"] for e in events.json()["data"]}
        if statuses != {"processed", "received"} or time.monotonic() - started > 5:
            break
        await asyncio.sleep(0.05)
    assert statuses == {"processed"}


async def _orders(api: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, dict]:
    response = await api.get("/api/marketplace/orders", params={"limit": 200}, headers=headers)
    return {o["externalOrderId"]: o for o in response.json()["data"]}


async def _wait_for_orders(api: httpx.AsyncClient, headers: dict[str, str], count: int) -> None:
    for _ in range(400):
        if len(await _orders(api, headers)) == count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the sync did not store the orders")
