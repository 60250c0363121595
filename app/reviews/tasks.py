"""Review sync jobs: one connection's sync, and the daily schedule of every live shop."""

from __future__ import annotations

import uuid
from typing import Any

from arq import cron, func
from sqlalchemy import select

from app.models import MarketplaceConnection
from app.models.enums import ConnectionStatus
from app.reviews import service
from app.worker_context import JobContext, arq_job

# Reviews arrive slowly and the platforms' review calls are many per shop (Lazada: per item
# and week): once a day, after the nightly product sync has refreshed the items asked about.
REVIEW_SYNC_HOURS = {4}


async def sync_reviews(ctx: JobContext, connection_id: str) -> str:
    return await service.run_review_sync(ctx["app"], uuid.UUID(connection_id))


async def schedule_review_syncs(ctx: JobContext) -> int:
    """Cron: queue a review sync of every live Shopee and Lazada connection."""
    async with ctx["app"].unit_of_work() as uow:
        rows = await uow.session.scalars(
            select(MarketplaceConnection).where(
                MarketplaceConnection.is_active.is_(True),
                MarketplaceConnection.status.in_((ConnectionStatus.ACTIVE, ConnectionStatus.ERROR)),
                MarketplaceConnection.platform_code.in_(sorted(service.REVIEW_PLATFORMS)),
            )
        )
        connections = rows.all()
        for connection in connections:
            service.queue_review_sync(uow.session, connection)
    return len(connections)


# No result kept: arq refuses a job id whose result it still holds, and the dedupe key is the
# connection's, so a kept result would block the next sync of the shop for an hour.
FUNCTIONS: list[Any] = [func(arq_job(sync_reviews), name="sync_reviews", keep_result=0)]
CRON_JOBS = [
    cron(arq_job(schedule_review_syncs), hour=REVIEW_SYNC_HOURS, minute=37, unique=True),
]
