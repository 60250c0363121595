"""The events that raise alerts, through the code that causes them. These need the hooks the
lead and helper_e wire (see the report): `mark_status` in app/connections/repository.py, the
sync engine's `_finish`, and Shopee push code 12 in app/webhooks/service.py."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.alerts import service as alerts
from app.connections import repository as connections
from app.models import MarketplaceAlert
from app.models.enums import ConnectionStatus
from app.worker_context import WorkerContext
from tests.alerts.conftest import Receiver
from tests.conftest import RunningSandbox, alter_connection
from tests.sync.conftest import connect_shop, sync


async def alert_types(session_factory: async_sessionmaker[AsyncSession]) -> list[str]:
    async with session_factory() as session:
        rows = await session.scalars(
            select(MarketplaceAlert.type).order_by(MarketplaceAlert.created_at)
        )
        return list(rows.all())


async def set_status(
    session_factory: async_sessionmaker[AsyncSession],
    connection: dict[str, Any],
    status: ConnectionStatus,
) -> None:
    async with session_factory() as session:
        await connections.mark_status(session, uuid.UUID(connection["id"]), status, "Refused")
        await session.commit()


async def test_each_move_into_reauth_required_or_error_alerts_once(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, _ = await connect_shop(api, sandbox, "lazada")
    await set_status(session_factory, connection, ConnectionStatus.REAUTH_REQUIRED)
    await set_status(session_factory, connection, ConnectionStatus.REAUTH_REQUIRED)  # no change
    assert await alert_types(session_factory) == ["connection.reauth_required"]
    await set_status(session_factory, connection, ConnectionStatus.ACTIVE)
    await set_status(session_factory, connection, ConnectionStatus.ERROR)
    await set_status(session_factory, connection, ConnectionStatus.REAUTH_REQUIRED)
    assert await alert_types(session_factory) == [
        "connection.reauth_required",
        "connection.error",
        "connection.reauth_required",
    ]


async def test_a_disconnected_connection_raises_no_status_alert(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, _ = await connect_shop(api, sandbox, "lazada")
    await alter_connection(session_factory, connection["id"], status="disconnected")
    await set_status(session_factory, connection, ConnectionStatus.ERROR)
    assert await alert_types(session_factory) == []


async def test_a_shop_failing_its_syncs_alerts_its_error_then_the_repeated_failure(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker: None,
    worker_context: WorkerContext,
    receiver: Receiver,
) -> None:
    connection, _ = await connect_shop(api, sandbox, "shopee", order_count=5)
    await alter_connection(
        session_factory, connection["id"], api_secret_encrypted="a-partner-key-that-signs-wrong"
    )
    for _ in range(3):
        assert (await sync(api, connection)).json()["data"]["status"] == "failed"
    assert await alert_types(session_factory) == ["connection.error", "sync.failed_repeatedly"]

    async with session_factory() as session:
        alert_ids = (await session.scalars(select(MarketplaceAlert.id))).all()
    for alert_id in alert_ids:
        # The running worker may deliver it first (its job is queued after the commit).
        assert await alerts.deliver(worker_context, alert_id) in ("sent", "skipped")
    for _ in range(100):
        async with session_factory() as session:
            statuses = (await session.scalars(select(MarketplaceAlert.status))).all()
        if set(statuses) == {"sent"}:
            break
        await asyncio.sleep(0.05)
    assert statuses == ["sent", "sent"]
    assert sorted(item.json["type"] for item in receiver.received) == [
        "connection.error",
        "sync.failed_repeatedly",
    ]
    for item in receiver.received:
        receiver.verify(item)
        assert item.json["connectionId"] == connection["id"]
