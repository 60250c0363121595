"""Jobs of the orders domain (registered by app/worker.py)."""

from __future__ import annotations

from typing import Any

from arq import cron, func

from app.orders import service
from app.worker_context import JobContext, arq_job

ARCHIVE_JOB = "archive_orders"


async def archive_orders(ctx: JobContext) -> int:
    """Daily: archive finished orders placed more than ORDER_ARCHIVE_AFTER_DAYS ago."""
    wc = ctx["app"]
    return await service.archive_finished_orders(
        wc.sessionmaker, wc.settings.order_archive_after_days
    )


FUNCTIONS: list[Any] = [func(arq_job(archive_orders), name=ARCHIVE_JOB)]
CRON_JOBS: list[Any] = [
    cron(arq_job(archive_orders), hour={3}, minute=31, unique=True, timeout=3600),
]
