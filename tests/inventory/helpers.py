from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import RunningSandbox, auth_headers
from tests.products.helpers import connect, sync_products

SKU = "SKU-0001-1"
USER = "seller-1"


async def three_shops(
    api: httpx.AsyncClient, sandbox: RunningSandbox
) -> dict[str, tuple[dict[str, Any], dict[str, str]]]:
    shops = {}
    for platform in ("shopee", "lazada", "facebook"):
        connection, credentials = await connect(api, sandbox, platform)
        await sync_products(api, connection)
        shops[platform] = (connection, credentials)
    return shops


async def inventory(api: httpx.AsyncClient, sku: str = SKU) -> dict[str, Any]:
    response = await api.get(
        f"/api/marketplace/inventory/{sku}", params={"userId": USER}, headers=auth_headers(USER)
    )
    assert response.status_code == 200, response.text
    row: dict[str, Any] = response.json()["data"]
    return row


async def set_stock(api: httpx.AsyncClient, sku: str = SKU, **body: Any) -> dict[str, Any]:
    response = await api.put(
        f"/api/marketplace/inventory/{sku}",
        json={"userId": USER, **body},
        headers=auth_headers(USER),
    )
    assert response.status_code == 200, response.text
    row: dict[str, Any] = response.json()["data"]
    return row


async def ledger(api: httpx.AsyncClient, sku: str = SKU) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"userId": USER, **({"cursor": cursor} if cursor else {})}
        response = await api.get(
            f"/api/marketplace/inventory/{sku}/ledger", params=params, headers=auth_headers(USER)
        )
        assert response.status_code == 200, response.text
        body = response.json()
        entries += body["data"]
        cursor = body["pagination"]["nextCursor"]
        if not cursor:
            return entries


async def eventually(check: Callable[[], Any], *, seconds: float = 20.0) -> Any:
    """Poll until `check()` (sync or async) returns something truthy; a deadline, no timing."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.05)


async def settled(api: httpx.AsyncClient, sku: str = SKU) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        row = await inventory(api, sku)
        pending = [item for item in row["listings"] if item["pushStatus"] == "pending"]
        return None if pending else row

    result: dict[str, Any] = await eventually(check)
    return result


async def sync_orders(api: httpx.AsyncClient, connection: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(
        "/api/marketplace/sync-orders",
        json={"connectionId": connection["id"], "userId": USER},
        headers=auth_headers(USER),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()["data"]
    return body


def replay(entries: list[dict[str, Any]]) -> int:
    """The balance the ledger tells: the last set, then reservations and releases."""
    balance = 0
    for entry in entries:
        if entry["kind"] == "set":
            balance = entry["quantity"]
        elif entry["kind"] == "reserve":
            balance -= entry["quantity"]
        elif entry["kind"] == "release":
            balance += entry["quantity"]
    return balance
