"""Shared by the product and inventory tests: the API with their routers, a worker running
their jobs, shops connected in the sandboxes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from app.config import Settings
from app.inventory import tasks as inventory_tasks
from app.inventory.router import router as inventory_router
from app.main import create_app
from app.products import tasks as product_tasks
from app.products.router import router as products_router
from app.worker import FUNCTIONS, create_worker
from tests.conftest import (
    RunningSandbox,
    auth_headers,
    connection_body,
    create_sandbox_shop,
    running_worker,
)

STOCK_FUNCTIONS = [*FUNCTIONS, *product_tasks.FUNCTIONS, *inventory_tasks.FUNCTIONS]


@asynccontextmanager
async def stock_app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API with the products and inventory routers (until app.main includes them)."""
    app = create_app(settings)
    if not any(getattr(r, "path", "") == "/api/marketplace/products" for r in app.routes):
        app.include_router(products_router)
        app.include_router(inventory_router)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://omni.test") as client:
            yield client


@asynccontextmanager
async def stock_worker(settings: Settings) -> AsyncIterator[None]:
    """A real arq worker in this event loop running the sync, product and stock jobs."""
    async with running_worker(settings, functions=STOCK_FUNCTIONS, cron_jobs=[], poll_delay=0.01):
        yield


async def run_stock_burst(settings: Settings) -> None:
    worker = create_worker(
        settings,
        functions=STOCK_FUNCTIONS,
        cron_jobs=[],
        burst=True,
        handle_signals=False,
        poll_delay=0.01,
    )
    try:
        await worker.async_run()
    finally:
        await worker.close()


async def connect(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    platform: str,
    user: str = "seller-1",
    **shop: Any,
) -> tuple[dict[str, Any], dict[str, str]]:
    """A new sandbox shop (`shop`: its control parameters, e.g. productCount) connected."""
    credentials = await create_sandbox_shop(sandbox, platform, **shop)
    response = await api.post(
        "/api/marketplace/connections",
        json=connection_body(user, platform, credentials),
        headers=auth_headers(user),
    )
    assert response.status_code == 201, response.text
    return response.json()["data"], credentials


async def sync_products(api: httpx.AsyncClient, connection: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(
        "/api/marketplace/sync-products",
        json={"connectionId": connection["id"], "userId": connection["userId"]},
        headers=auth_headers(connection["userId"]),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()["data"]
    return body


async def all_listings(api: httpx.AsyncClient, user: str, **params: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {"userId": user, "limit": "50", **params}
        if cursor:
            query["cursor"] = cursor
        response = await api.get(
            "/api/marketplace/products", params=query, headers=auth_headers(user)
        )
        assert response.status_code == 200, response.text
        body = response.json()
        rows += body["data"]
        cursor = body["pagination"]["nextCursor"]
        if not cursor:
            return rows


def sandbox_shop(sandbox: RunningSandbox, platform: str, shop_id: str) -> Any:
    """The seeded shop behind a sandbox connection (products and their stock)."""
    if platform == "shopee":
        return sandbox.sandboxes.shopee.shops[int(shop_id)].seeded
    if platform == "lazada":
        return sandbox.sandboxes.lazada.shops[shop_id].shop
    if platform == "tiktok":
        return sandbox.sandboxes.tiktok.shops[shop_id].shop
    return sandbox.sandboxes.facebook.pages[shop_id].shop


def sandbox_stock(sandbox: RunningSandbox, platform: str, shop_id: str, sku: str) -> int:
    found = sandbox_shop(sandbox, platform, shop_id).variation_by_sku(sku)
    assert found is not None, sku
    stock: int = found[1].stock
    return stock
