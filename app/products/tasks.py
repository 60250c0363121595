"""Product sync jobs: run one (by log id), the schedule, and a follow-up after a push."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from arq import cron
from sqlalchemy import select

from app.errors import SyncAlreadyRunning
from app.models import MarketplaceConnection
from app.models.enums import ConnectionStatus, SyncTrigger
from app.products import service
from app.worker_context import JobContext, arq_job

# Products change less than orders: a daily sweep, plus every product push from the shops.
PRODUCT_SYNC_HOURS = {2}


def _stale_after(ctx: JobContext) -> timedelta:
    return timedelta(seconds=ctx["app"].settings.sync_stale_seconds)


async def sync_products(ctx: JobContext, sync_log_id: str) -> str:
    return await service.run_product_sync(ctx["app"], uuid.UUID(sync_log_id))


async def sync_products_follow_up(ctx: JobContext, connection_id: str) -> str:
    """A product push arrived while a sync was running: sync again once it is done."""
    async with ctx["app"].unit_of_work() as uow:
        connection = await uow.session.get(MarketplaceConnection, uuid.UUID(connection_id))
        if connection is None:
            return "no connection"
        try:
            await service.start_product_sync(
                uow, connection, stale_after=_stale_after(ctx), trigger=SyncTrigger.WEBHOOK
            )
        except SyncAlreadyRunning:
            return "already running"
    return "started"


async def schedule_product_syncs(ctx: JobContext) -> int:
    """Cron: a product sync of every live connection."""
    started = 0
    async with ctx["app"].unit_of_work() as uow:
        rows = await uow.session.scalars(
            select(MarketplaceConnection).where(
                MarketplaceConnection.is_active.is_(True),
                MarketplaceConnection.status.in_((ConnectionStatus.ACTIVE, ConnectionStatus.ERROR)),
            )
        )
        for connection in rows.all():
            try:
                await service.start_product_sync(
                    uow, connection, stale_after=_stale_after(ctx), trigger=SyncTrigger.SCHEDULE
                )
                started += 1
            except SyncAlreadyRunning:
                continue
    return started


FUNCTIONS: list[Any] = [sync_products, sync_products_follow_up]
CRON_JOBS = [
    cron(arq_job(schedule_product_syncs), hour=PRODUCT_SYNC_HOURS, minute=23, unique=True),
]
