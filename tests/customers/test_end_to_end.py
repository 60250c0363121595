"""Orders synced from a sandbox shop by the real worker become customers without anything
else asked: ingest queues the refresh job, the worker links them."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import RunningSandbox, auth_headers
from tests.sync.conftest import (
    connect_shop,
    sync,
    worker,  # noqa: F401 - the fixture
)

USER = "seller-1"


async def test_a_sync_links_its_orders_to_customers(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    worker: None,  # noqa: F811
) -> None:
    connection, _ = await connect_shop(api, sandbox, "shopee", user=USER, order_count=5, days=10)
    assert (await sync(api, connection)).json()["data"]["status"] == "success"
    headers = auth_headers(USER)
    orders = (
        await api.get("/api/marketplace/orders", params={"userId": USER}, headers=headers)
    ).json()["data"]
    assert len(orders) == 5
    customers: list[dict[str, object]] = []
    for _ in range(200):  # the job runs after the sync's commit; no fixed sleep
        response = await api.get(
            "/api/marketplace/customers", params={"userId": USER}, headers=headers
        )
        assert response.status_code == 200, response.text
        customers = response.json()["data"]
        if sum(int(str(c["orderCount"])) for c in customers) == 5:
            break
        await asyncio.sleep(0.05)
    assert sum(int(str(c["orderCount"])) for c in customers) == 5
    assert all(c["channels"] == ["shopee"] for c in customers)
