"""Sync jobs: run one sync (by log id), and start the syncs that schedules say are due."""

from __future__ import annotations

import uuid
from typing import Any

from app.errors import ConflictError
from app.models import MarketplaceConnection
from app.sync import service
from app.sync.engine import run_sync
from app.worker_context import WorkerContext


async def sync_orders(ctx: dict[str, Any], sync_log_id: str) -> str:
    wc: WorkerContext = ctx["app"]
    return await run_sync(wc, uuid.UUID(sync_log_id))


async def schedule_due_syncs(ctx: dict[str, Any]) -> int:
    """Cron: start a sync for each connection whose `syncIntervalMinutes` has elapsed."""
    wc: WorkerContext = ctx["app"]
    started = 0
    async with wc.sessionmaker() as session:
        due_ids = [c.id for c in await service.due_connections(session)]
    for connection_id in due_ids:
        async with wc.unit_of_work() as uow:
            connection = await uow.session.get(MarketplaceConnection, connection_id)
            if connection is None:
                continue
            try:
                await service.start_sync(uow, connection, trigger="schedule")
                started += 1
            except ConflictError:
                continue  # already running, or needs re-authorization
    return started
