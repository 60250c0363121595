"""Jobs of the customers domain (registered by app/worker.py)."""

from __future__ import annotations

import uuid
from typing import Any

from arq import cron, func

from app.customers import service
from app.worker_context import JobContext, arq_job

REFRESH_JOB = "refresh_customers"
REFRESH_BEHIND_JOB = "refresh_customers_behind"
REBUILD_JOB = "rebuild_customers"


def refresh_dedupe_key(connection_id: uuid.UUID | str) -> str:
    """One queued refresh per connection: a burst of ingests is linked by one run."""
    return f"{REFRESH_JOB}:{connection_id}"


async def refresh_customers(ctx: JobContext, connection_id: str) -> int:
    """After ingest: link the connection's changed orders to customers."""
    return await service.refresh_connection(ctx["app"].sessionmaker, uuid.UUID(connection_id))


async def refresh_customers_behind(ctx: JobContext) -> int:
    """Every few minutes: link what ingest did not ask for (live and Messenger orders, data
    older than this feature, a job lost with Redis)."""
    return await service.refresh_behind(ctx["app"].sessionmaker)


async def rebuild_customers(ctx: JobContext, user_id: str) -> int:
    """Forget one user's customers and link all their orders again."""
    return await service.rebuild(ctx["app"].sessionmaker, user_id)


FUNCTIONS: list[Any] = [
    func(arq_job(refresh_customers), name=REFRESH_JOB, timeout=3600),
    func(arq_job(refresh_customers_behind), name=REFRESH_BEHIND_JOB, timeout=3600),
    func(arq_job(rebuild_customers), name=REBUILD_JOB, timeout=3600),
]
CRON_JOBS: list[Any] = [
    cron(
        arq_job(refresh_customers_behind),
        minute=set(range(2, 60, 5)),
        unique=True,
        timeout=3600,
    ),
]
