"""Jobs of the webhooks domain (registered by app/worker.py)."""

from __future__ import annotations

from typing import Any, cast

from arq import cron, func
from arq.typing import WorkerCoroutine

from app.webhooks import service
from app.worker_context import JobContext


async def process_webhook(ctx: JobContext, webhook_id: int) -> str:
    return await service.process(ctx["app"], webhook_id, ctx["job_try"])


async def sweep_webhooks(ctx: JobContext) -> int:
    """Cron: queue events that were stored but never reached (or fell out of) the queue."""
    return await service.sweep(ctx["app"])


async def collect_shopee_lost_pushes(ctx: JobContext) -> int:
    """Cron: store and process the pushes Shopee failed to deliver."""
    return await service.collect_shopee_lost_pushes(ctx["app"])


def _job(function: Any) -> WorkerCoroutine:
    # Our jobs take the typed JobContext; arq types its context as a plain dict.
    return cast(WorkerCoroutine, function)


FUNCTIONS: list[Any] = [
    # keep_result=0 frees the job id once the job ends, so a retried event can be queued again
    # under the same id; max_tries leaves the last word to the service's own attempt count.
    func(
        _job(process_webhook),
        name=service.PROCESS_JOB,
        keep_result=0,
        max_tries=service.MAX_ATTEMPTS + 1,
    ),
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
