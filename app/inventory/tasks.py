"""Stock jobs: pushes per connection, the sweep that re-queues pushes a lost job left
pending, and the nightly recompute of the counters."""

from __future__ import annotations

import uuid
from typing import Any

from arq import cron, func
from sqlalchemy import text

from app.inventory.outbox import install_job_sender
from app.inventory.push import push_connection
from app.inventory.recompute import recompute_counters
from app.inventory.requests import PUSH_JOB, push_job_id
from app.worker_context import JobContext, arq_job

# Pending this long with no push job is taken as a lost job (pushes normally start at once).
SWEEP_AFTER_SECONDS = 10


async def push_stock(ctx: JobContext, connection_id: str) -> int:
    install_job_sender(ctx["redis"])
    return await push_connection(ctx["app"], uuid.UUID(connection_id))


async def sweep_pending_pushes(ctx: JobContext) -> int:
    """Cron: queue a push for every connection with listings left pending; the job id
    coalesces with one already queued."""
    install_job_sender(ctx["redis"])
    async with ctx["app"].sessionmaker() as session:
        rows = await session.execute(
            text(
                "SELECT DISTINCT connection_id FROM marketplace_stock_levels "
                "WHERE push_status = 'pending' AND (last_push_at IS NULL "
                "OR last_push_at < now() - make_interval(secs => :after))"
            ),
            {"after": SWEEP_AFTER_SECONDS},
        )
        connections = [row.connection_id for row in rows]
    for connection_id in connections:
        await ctx["redis"].enqueue_job(
            PUSH_JOB, str(connection_id), _job_id=push_job_id(connection_id)
        )
    return len(connections)


async def recompute_stock(ctx: JobContext) -> list[dict[str, object]]:
    """Cron, nightly: counters recomputed from the ledger and the reservations; drift is
    reported in the log and in the job's result."""
    return await recompute_counters(ctx["app"].sessionmaker)


# keep_result=0: a finished push must not block the next push with the same (coalescing) id.
FUNCTIONS: list[Any] = [func(arq_job(push_stock), name=PUSH_JOB, keep_result=0)]
CRON_JOBS = [
    cron(arq_job(sweep_pending_pushes), second={7, 17, 27, 37, 47, 57}, unique=True),
    cron(arq_job(recompute_stock), hour={4}, minute=11, unique=True),
]
