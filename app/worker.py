"""The arq worker: job functions and cron schedule of every domain."""

from __future__ import annotations

from typing import Any

from arq import cron
from arq.worker import Worker

from app.config import Settings
from app.connections.tasks import verify_all_connections, verify_connection
from app.jobs import redis_settings
from app.sync.tasks import schedule_due_syncs, sync_orders
from app.webhooks import tasks as webhook_tasks
from app.worker_context import WorkerContext

FUNCTIONS: list[Any] = [sync_orders, verify_connection, *webhook_tasks.FUNCTIONS]
CRON_JOBS = [
    cron(schedule_due_syncs, second={5}, unique=True),
    cron(verify_all_connections, hour={1, 7, 13, 19}, minute=17, unique=True),
    *webhook_tasks.CRON_JOBS,
]


def create_worker(settings: Settings, **kwargs: Any) -> Worker:
    assert settings.redis_url is not None

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["app"] = WorkerContext.create(settings, redis=ctx["redis"])

    async def shutdown(ctx: dict[str, Any]) -> None:
        if "app" in ctx:
            await ctx["app"].close()

    return Worker(
        functions=FUNCTIONS,
        cron_jobs=CRON_JOBS,
        redis_settings=redis_settings(settings.redis_url),
        on_startup=startup,
        on_shutdown=shutdown,
        max_jobs=20,
        job_timeout=3600,
        keep_result=3600,
        **kwargs,
    )
