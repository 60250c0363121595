"""Jobs of the buyers domain (registered by app/worker.py)."""

from __future__ import annotations

from typing import Any

from arq import cron, func

from app.buyers import service
from app.worker_context import JobContext, arq_job

ERASE_EXPIRED_JOB = "erase_expired_buyer_data"


async def erase_expired_buyer_data(ctx: JobContext) -> int:
    """Daily: erase the buyer data of orders older than BUYER_DATA_RETENTION_DAYS (unset:
    nothing is erased)."""
    wc = ctx["app"]
    return await service.erase_expired_buyer_data(
        wc.sessionmaker, wc.settings.buyer_data_retention_days
    )


FUNCTIONS: list[Any] = [func(arq_job(erase_expired_buyer_data), name=ERASE_EXPIRED_JOB)]
CRON_JOBS: list[Any] = [
    cron(arq_job(erase_expired_buyer_data), hour={2}, minute=47, unique=True, timeout=3600),
]
