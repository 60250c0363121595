from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from app.analytics.router import router as analytics_router
from app.config import Settings
from app.main import create_app


@asynccontextmanager
async def analytics_app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API over ASGI with the analytics routes (added here until app.main includes them)."""
    app = create_app(settings)
    paths = {getattr(route, "path", None) for route in app.routes}
    if "/api/marketplace/analytics/summary" not in paths:
        app.include_router(analytics_router)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://omni.test") as client:
            yield client
