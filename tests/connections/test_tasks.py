"""Jobs through a real arq worker in burst mode."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.connections.tasks import verify_all_connections
from app.models import MarketplaceSyncLog
from app.sync.tasks import schedule_due_syncs
from tests.conftest import (
    RunningSandbox,
    alter_connection,
    auth_headers,
    connection_body,
    create_sandbox_shop,
    run_burst,
)


async def connect(api: httpx.AsyncClient, sandbox: RunningSandbox, **extra: Any) -> str:
    credentials = await create_sandbox_shop(sandbox, "shopee", order_count=15)
    body = {**connection_body("u1", "shopee", credentials), **extra}
    response = await api.post("/api/marketplace/connections", json=body, headers=auth_headers("u1"))
    assert response.status_code == 201, response.text
    connection_id: str = response.json()["data"]["id"]
    return connection_id


async def test_verify_job_marks_refused_credentials(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    settings: Settings,
    job_context: dict[str, Any],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    healthy = await connect(api, sandbox)
    broken = await connect(api, sandbox)
    await alter_connection(session_factory, broken, api_secret_encrypted="revoked-partner-key")

    assert await verify_all_connections(job_context) == 2
    await run_burst(settings)

    listed = (await api.get("/api/marketplace/connections", headers=auth_headers("u1"))).json()[
        "data"
    ]
    by_id = {c["id"]: c for c in listed}
    assert by_id[healthy]["status"] == "active"
    assert by_id[broken]["status"] == "error"
    assert by_id[broken]["statusReason"]


async def test_scheduled_sync_runs_when_its_interval_has_passed(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    settings: Settings,
    job_context: dict[str, Any],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    scheduled = await connect(api, sandbox, syncIntervalMinutes=15)
    await connect(api, sandbox, syncIntervalMinutes=None)  # no schedule: left alone
    listed = (await api.get("/api/marketplace/connections", headers=auth_headers("u1"))).json()
    by_id = {c["id"]: c for c in listed["data"]}
    first = datetime.fromisoformat(by_id[scheduled]["nextSyncAt"])
    # Spread over the interval (by connection id), never later than one interval away.
    assert (
        datetime.now(UTC) - timedelta(seconds=5)
        <= first
        <= datetime.now(UTC) + timedelta(minutes=15)
    )
    assert [c["nextSyncAt"] for c in listed["data"] if c["id"] != scheduled] == [None]
    await alter_connection(session_factory, scheduled, next_sync_at=datetime.now(UTC))

    assert await schedule_due_syncs(job_context) == 1
    await run_burst(settings)
    # Within its interval after that run, nothing more is due.
    assert await schedule_due_syncs(job_context) == 0
    listed = (await api.get("/api/marketplace/connections", headers=auth_headers("u1"))).json()
    moved = next(c for c in listed["data"] if c["id"] == scheduled)
    assert datetime.fromisoformat(moved["nextSyncAt"]) > datetime.now(UTC) + timedelta(minutes=14)

    async with session_factory() as session:
        logs = (await session.scalars(select(MarketplaceSyncLog))).all()
    assert [(str(log.connection_id), log.trigger, log.status) for log in logs] == [
        (scheduled, "schedule", "success")
    ]
    assert logs[0].orders_created == 15
