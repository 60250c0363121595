"""Jobs of the webhooks domain (registered by app/worker.py)."""

from __future__ import annotations

import uuid
from typing import Any, cast

from arq import cron, func
from arq.typing import WorkerCoroutine

from app.webhooks import drain, service
from app.worker_context import JobContext


async def drain_webhooks(ctx: JobContext, connection_id: str) -> dict[str, int]:
    """Everything the shop has waiting, read in bulk (app/webhooks/drain.py)."""
    return await drain.drain(ctx["app"], uuid.UUID(connection_id))


async def sweep_webhooks(ctx: JobContext) -> int:
    """Cron: a drain for events left waiting past their time (never queued, or their job
    lost with a worker)."""
    return await service.sweep(ctx["app"])


async def collect_shopee_lost_pushes(ctx: JobContext) -> int:
    """Cron: store and process the pushes Shopee failed to deliver."""
    return await service.collect_shopee_lost_pushes(ctx["app"])


def _job(function: Any) -> WorkerCoroutine:
    # Our jobs take the typed JobContext; arq types its context as a plain dict.
    return cast(WorkerCoroutine, function)


FUNCTIONS: list[Any] = [
    # keep_result=0 frees the job id once the job ends, so the next push queues a new drain;
    # an event's own attempts (and back-off) are counted on its row, not by arq.
    func(_job(drain_webhooks), name=service.DRAIN_JOB, keep_result=0, max_tries=3),
]
CRON_JOBS: list[Any] = [
    cron(_job(sweep_webhooks), second=set(range(0, 60, 10)), unique=True, timeout=60),
    cron(
        _job(collect_shopee_lost_pushes),
        minute=set(range(0, 60, 5)),
        second={35},
        unique=True,
        timeout=300,
    ),
]
