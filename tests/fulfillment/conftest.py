from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.config import Settings
from tests.conftest import (
    RunningSandbox,
    auth_headers,
    connection_body,
    create_sandbox_shop,
    make_settings,
    running_app,
    running_worker,
)

USER = "seller-1"
HEADERS = auth_headers(USER)
# Each platform's way to ship in these tests.
SHIP_BODY: dict[str, dict[str, Any]] = {
    "shopee": {"method": "dropoff"},
    "lazada": {"method": "dropoff"},
    "facebook": {"method": "tracking", "trackingNumber": "TH0001", "carrier": "OTHER"},
    "tiktok": {"method": "dropoff"},
}


@pytest.fixture
def settings(database_url: str, redis_url: str, sandbox: RunningSandbox) -> Settings:
    # Tracking numbers are read again quickly here; the platform's pace is the default.
    return make_settings(database_url, redis_url, sandbox, FULFILLMENT_TRACKING_RETRY_SECONDS=0.2)


@pytest.fixture
async def api(settings: Settings, clean: None) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(settings) as client:
        yield client


@pytest.fixture
async def worker(settings: Settings, api: httpx.AsyncClient) -> AsyncIterator[None]:
    async with running_worker(settings):
        yield


@dataclass
class Shop:
    platform: str
    connection: dict[str, Any]
    credentials: dict[str, str]
    orders: list[dict[str, Any]]  # as the API lists them, oldest first


async def control(sandbox: RunningSandbox, platform: str, path: str, body: dict[str, Any]) -> Any:
    async with httpx.AsyncClient(base_url=sandbox.root) as client:
        response = await client.post(f"/{platform}/_sandbox/{path}", json=body)
        response.raise_for_status()
        return response.json()


async def sync(api: httpx.AsyncClient, shop: Shop | dict[str, Any]) -> None:
    connection = shop.connection if isinstance(shop, Shop) else shop
    response = await api.post(
        "/api/marketplace/sync-orders",
        json={"connectionId": connection["id"], "userId": USER},
        headers=HEADERS,
    )
    assert response.status_code in (200, 202), response.text
    assert response.json()["data"]["status"] == "success", response.text


async def list_orders(api: httpx.AsyncClient, connection_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        response = await api.get(
            "/api/marketplace/orders",
            params={
                "userId": USER,
                "connectionId": connection_id,
                "limit": 200,
                "offset": len(found),
                "sort": "createdAt",
            },
            headers=HEADERS,
        )
        assert response.status_code == 200, response.text
        page = response.json()["data"]
        found += page
        if len(page) < 200:
            return found


async def open_shop(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    platform: str,
    count: int,
    **placing: Any,
) -> Shop:
    """A new sandbox shop with `count` paid orders placed now, connected and synced."""
    credentials = await create_sandbox_shop(sandbox, platform, order_count=0, days=1)
    await control(
        sandbox, platform, "orders", {"shopId": credentials["shopId"], "count": count, **placing}
    )
    response = await api.post(
        "/api/marketplace/connections",
        json=connection_body(USER, platform, credentials),
        headers=HEADERS,
    )
    assert response.status_code == 201, response.text
    connection = response.json()["data"]
    await sync(api, connection)
    orders = await list_orders(api, connection["id"])
    assert len(orders) == count
    return Shop(platform, connection, credentials, orders)


async def ship(
    api: httpx.AsyncClient, order_id: int, key: str | None = None, **body: Any
) -> httpx.Response:
    headers = {**HEADERS, **({"Idempotency-Key": key} if key else {})}
    return await api.post(
        f"/api/marketplace/orders/{order_id}/ship", json={"userId": USER, **body}, headers=headers
    )


async def fulfillments(api: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"userId": USER, "limit": 200, **params}
        if cursor:
            query["cursor"] = cursor
        response = await api.get("/api/marketplace/fulfillments", params=query, headers=HEADERS)
        assert response.status_code == 200, response.text
        rows += response.json()["data"]
        cursor = response.json()["pagination"]["nextCursor"]
        if not cursor:
            return rows


async def settled(
    api: httpx.AsyncClient, ids: set[str], *, tracking: bool = False, timeout: float = 30
) -> dict[str, dict[str, Any]]:
    """The fulfillments once none of `ids` is `requested` (and, if asked, all shipped ones
    carry a tracking number)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        rows = {f["id"]: f for f in await fulfillments(api) if f["id"] in ids}
        done = len(rows) == len(ids) and all(f["status"] != "requested" for f in rows.values())
        if done and tracking:
            done = all(f["trackingNumber"] for f in rows.values() if f["status"] == "shipped")
        if done:
            return rows
        assert asyncio.get_running_loop().time() < deadline, rows
        await asyncio.sleep(0.1)


async def order(api: httpx.AsyncClient, order_id: int) -> dict[str, Any]:
    response = await api.get(
        f"/api/marketplace/orders/{order_id}", params={"userId": USER}, headers=HEADERS
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data
