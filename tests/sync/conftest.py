from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.worker_context import WorkerContext
from tests.conftest import (
    RunningSandbox,
    auth_headers,
    connection_body,
    create_sandbox_shop,
    running_worker,
)


@pytest.fixture
async def worker(settings: Settings, clean: None) -> AsyncIterator[None]:
    """A real arq worker in this event loop, polling the test Redis."""
    async with running_worker(settings):
        yield


@pytest.fixture
async def worker_context(settings: Settings, redis: Any) -> AsyncIterator[WorkerContext]:
    wc = WorkerContext.create(settings, redis=redis)
    yield wc
    await wc.close()


async def control(sandbox: RunningSandbox, platform: str, path: str, body: dict[str, Any]) -> Any:
    async with httpx.AsyncClient(base_url=sandbox.root) as client:
        response = await client.post(f"/{platform}/_sandbox/{path}", json=body)
        response.raise_for_status()
        return response.json() if response.content else None


async def connect_shop(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    platform: str,
    *,
    user: str = "seller-1",
    order_count: int = 0,
    days: int = 30,
) -> tuple[dict[str, Any], dict[str, str]]:
    credentials = await create_sandbox_shop(sandbox, platform, order_count=order_count, days=days)
    response = await api.post(
        "/api/marketplace/connections",
        json=connection_body(user, platform, credentials),
        headers=auth_headers(user),
    )
    assert response.status_code == 201, response.text
    return response.json()["data"], credentials


async def sync(
    api: httpx.AsyncClient, connection: dict[str, Any], *, full: bool = False
) -> httpx.Response:
    return await api.post(
        "/api/marketplace/sync-orders",
        json={"connectionId": connection["id"], "userId": connection["userId"], "full": full},
        headers=auth_headers(connection["userId"]),
    )
