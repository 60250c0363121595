"""The events that raise alerts, through the code that causes them. These need the hooks the
lead and helper_e wire (see the report): `mark_status` in app/connections/repository.py, the
sync engine's `_finish`, and Shopee push code 12 in app/webhooks/service.py."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import MarketplaceWebhook
from app.webhooks import drain
from app.worker_context import WorkerContext
from tests.alerts.test_triggers import alert_types
from tests.conftest import RunningSandbox
from tests.sync.conftest import connect_shop


async def test_a_shopee_authorization_expiry_push_alerts_once(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
) -> None:
    connection, credentials = await connect_shop(api, sandbox, "shopee")
    payload = {"data": {}, "shop_id": int(credentials["shopId"]), "code": 12, "timestamp": 1}
    async with session_factory() as session:
        rows = [
            MarketplaceWebhook(
                platform_code="shopee",
                user_id=connection["userId"],
                connection_id=uuid.UUID(connection["id"]),
                event_type="authorization_expiry",
                dedupe_key=f"12:{n}",
                payload={**payload, "timestamp": n},
            )
            for n in (1, 2)  # Shopee repeats the warning
        ]
        session.add_all(rows)
        await session.commit()
        ids = [row.id for row in rows]
    assert len(ids) == 2
    assert await drain.drain(worker_context, uuid.UUID(connection["id"])) == {"processed": 2}
    assert await alert_types(session_factory) == ["authorization.expiring"]
