"""Stock jobs: push rounds per connection, the sweep that re-queues pushes a lost job left
pending or whose retry fell due, and the nightly recompute of the counters."""

from __future__ import annotations

import uuid
from typing import Any

from arq import cron, func
from sqlalchemy import text

from app.inventory.push import PUSHABLE_STATUSES, push_connection
from app.inventory.recompute import recompute_counters
from app.inventory.requests import PUSH_JOB, queue_push_jobs
from app.worker_context import JobContext, arq_job

# Connections of pushable status with listings that a round should take now: pending past
# their lease (no round claimed them in time, or the round died), or failed transiently or
# drifted with their retry due. A refused listing has no retry time and is left alone.
_DUE_CONNECTIONS = text(
    "SELECT DISTINCT l.connection_id FROM marketplace_stock_levels l "
    "JOIN marketplace_connections c ON c.id = l.connection_id "
    "WHERE c.is_active AND c.status = ANY(CAST(:statuses AS text[])) "
    "AND ((l.push_status = 'pending' AND (l.push_lease_until IS NULL "
    "OR l.push_lease_until < now())) "
    "OR (l.push_status IN ('failed', 'drift') AND l.push_retry_at <= now())) "
    "AND EXISTS (SELECT 1 FROM sku_mappings m WHERE m.listing_id = l.id "
    "AND m.master_sku_id IS NOT NULL)"
)


async def push_stock(ctx: JobContext, connection_id: str) -> int:
    return await push_connection(ctx["app"], uuid.UUID(connection_id))


async def sweep_pending_pushes(ctx: JobContext) -> int:
    """Cron: queue a push round for every connection with listings left pending past their
    lease or with a failed or drifted push due for its retry; returns how many."""
    async with ctx["app"].sessionmaker() as session:
        rows = await session.execute(
            _DUE_CONNECTIONS, {"statuses": [str(status) for status in PUSHABLE_STATUSES]}
        )
        connections = {row.connection_id for row in rows}
        queue_push_jobs(session, connections, defer_seconds=0.0)
        await session.commit()
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
