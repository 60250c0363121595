"""Live selling tests: the API with the live and inventory routers, a Facebook shop in the
sandbox, master SKUs with stock, and Page events handled as the webhook job will."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from app.config import Settings
from app.inventory.router import router as inventory_router
from app.live.router import router as live_router
from app.main import create_app
from tests.conftest import RunningSandbox, make_settings

PUBLIC_BASE_URL = "http://omni.test"


@pytest.fixture
def settings(database_url: str, redis_url: str, sandbox: RunningSandbox) -> Settings:
    return make_settings(database_url, redis_url, sandbox, PUBLIC_BASE_URL=PUBLIC_BASE_URL)


@asynccontextmanager
async def live_app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API with the live and inventory routers (until app.main includes them)."""
    app = create_app(settings)
    paths = {getattr(r, "path", "") for r in app.routes}
    if "/api/marketplace/live-sessions" not in paths:
        app.include_router(live_router)
    if "/api/marketplace/inventory/{sku}" not in paths:
        app.include_router(inventory_router)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_BASE_URL) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


@pytest.fixture
async def api(settings: Settings, clean: None) -> AsyncIterator[httpx.AsyncClient]:
    async with live_app(settings) as client:
        yield client
