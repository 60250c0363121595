"""The arq worker: job functions and cron schedule of every domain, and a run loop that
waits out Redis outages and stops gracefully (running syncs checkpoint first)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from arq import cron
from arq.worker import Worker
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError

from app.alerts import tasks as alert_tasks
from app.buyers import tasks as buyer_tasks
from app.config import Settings
from app.connections.hosts import reconcile_host_statuses
from app.connections.tasks import verify_all_connections, verify_connection
from app.customers import tasks as customer_tasks
from app.fulfillment import tasks as fulfillment_tasks
from app.inventory import tasks as inventory_tasks
from app.jobs import redis_settings
from app.jobs.context import outbox_functions
from app.jobs.relay import Relay
from app.live import tasks as live_tasks
from app.metrics.service import Flusher
from app.orders import tasks as order_tasks
from app.products import tasks as product_tasks
from app.reviews import tasks as review_tasks
from app.sync.tasks import (
    reconcile_all,
    recover_dead_syncs,
    schedule_due_syncs,
    sync_orders,
)
from app.webhooks import tasks as webhook_tasks
from app.worker_context import WorkerContext, arq_job

logger = logging.getLogger("app.worker")

# How long a stopping worker lets running jobs reach their next checkpoint before cancelling.
STOP_GRACE_SECONDS = 20.0
REDIS_RETRY_CAP_SECONDS = 30.0


FUNCTIONS: list[Any] = [
    sync_orders,
    verify_connection,
    *webhook_tasks.FUNCTIONS,
    *alert_tasks.FUNCTIONS,
    *buyer_tasks.FUNCTIONS,
    *product_tasks.FUNCTIONS,
    *inventory_tasks.FUNCTIONS,
    *order_tasks.FUNCTIONS,
    *live_tasks.FUNCTIONS,
    *review_tasks.FUNCTIONS,
    *fulfillment_tasks.FUNCTIONS,
    *customer_tasks.FUNCTIONS,
]
CRON_JOBS = [
    cron(arq_job(schedule_due_syncs), second={5, 20, 35, 50}, unique=True),
    cron(arq_job(recover_dead_syncs), second={0, 10, 20, 30, 40, 50}, unique=True),
    cron(arq_job(reconcile_all), hour={3}, minute=41, unique=True),
    cron(arq_job(verify_all_connections), hour={1, 7, 13, 19}, minute=17, unique=True),
    *webhook_tasks.CRON_JOBS,
    *alert_tasks.CRON_JOBS,
    *buyer_tasks.CRON_JOBS,
    *product_tasks.CRON_JOBS,
    *inventory_tasks.CRON_JOBS,
    *order_tasks.CRON_JOBS,
    *live_tasks.CRON_JOBS,
    *review_tasks.CRON_JOBS,
    *fulfillment_tasks.CRON_JOBS,
    *customer_tasks.CRON_JOBS,
]


class ResilientWorker(Worker):
    """An arq worker whose poll loop survives Redis going away: it logs, backs off and carries
    on when Redis is back, with its running jobs untouched (they need only PostgreSQL)."""

    _redis_delay = 0.0

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except (RedisError, OSError) as exc:
            self._redis_delay = min(REDIS_RETRY_CAP_SECONDS, max(0.5, self._redis_delay * 2))
            logger.warning(
                "redis unavailable; the worker waits and retries",
                extra={"error": type(exc).__name__, "retry_in_seconds": self._redis_delay},
            )
            await asyncio.sleep(self._redis_delay)
        else:
            self._redis_delay = 0.0


async def mark_host_statuses(wc: WorkerContext) -> None:
    try:
        async with wc.sessionmaker() as session:
            await reconcile_host_statuses(session, wc.settings)
            await session.commit()
    except (DBAPIError, OSError) as exc:  # the database may still be starting: the cron does it
        logger.warning("connection hosts not checked at start-up", extra={"error": str(exc)})


def create_worker(settings: Settings, **kwargs: Any) -> Worker:
    assert settings.redis_url is not None

    async def startup(ctx: dict[str, Any]) -> None:
        if "app" not in ctx:  # a restart after a Redis outage keeps the same context
            ctx["app"] = WorkerContext.create(settings, redis=ctx["redis"])
        wc: WorkerContext = ctx["app"]
        if wc.relay is None:
            wc.relay = Relay.from_settings(settings, wc.sessionmaker, ctx["redis"])
            # One pass before the first poll: a burst worker finds what is already committed.
            with contextlib.suppress(RedisError, OSError, DBAPIError):
                await wc.relay.flush()
            wc.relay.start()
        if "metrics_flusher" not in ctx:
            ctx["metrics_flusher"] = Flusher(ctx["redis"]).start()
        # Settings may name other marketplace hosts than last time: connections made against
        # the old ones show `misconfigured` now, not at their next job.
        await mark_host_statuses(ctx["app"])

    async def shutdown(ctx: dict[str, Any]) -> None:
        if "metrics_flusher" in ctx:
            await ctx.pop("metrics_flusher").stop()
        if "app" in ctx:
            wc: WorkerContext = ctx["app"]
            if wc.relay is not None:
                await wc.relay.stop()
                wc.relay = None
            await wc.close()

    options: dict[str, Any] = {
        "functions": FUNCTIONS,
        "cron_jobs": CRON_JOBS,
        "redis_settings": redis_settings(settings.redis_url),
        "on_startup": startup,
        "on_shutdown": shutdown,
        "max_jobs": 20,
        # arq's default 0.5 s between queue polls is half the live comment budget per hop
        # (webhook drain, then allocation); a poll is one cheap ZRANGEBYSCORE.
        "poll_delay": 0.05,
        "job_timeout": 3600,
        "keep_result": 3600,
    }
    options.update(kwargs)
    # Every job runs through the outbox wrapper (lease, finish, retry policy).
    options["functions"] = outbox_functions(options["functions"])
    worker: Worker = ResilientWorker(**options)
    return worker


async def run_worker_until_stopped(settings: Settings, stop: asyncio.Event, **kwargs: Any) -> None:
    """Run a worker until `stop` is set. Redis down at start or later is waited out. On stop,
    no new job is taken, running syncs commit their batch and hand over (they resume on any
    worker), and what is still running after STOP_GRACE_SECONDS is cancelled."""
    worker = create_worker(settings, handle_signals=False, **kwargs)
    delay = 0.5
    while not stop.is_set():
        main = asyncio.create_task(worker.main())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({main, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not main.done():
            break
        error = main.exception()
        if error is None:
            return  # a burst worker that ran out of jobs
        if not isinstance(error, RedisError | OSError):
            raise error
        logger.warning("redis unavailable at start; retrying", extra={"retry_in_seconds": delay})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        delay = min(REDIS_RETRY_CAP_SECONDS, delay * 2)
    await _stop(worker, main)


async def _stop(worker: Worker, main: asyncio.Task[None]) -> None:
    worker.allow_pick_jobs = False
    context: WorkerContext | None = worker.ctx.get("app")
    if context is not None:
        context.stopping.set()
    running = [task for task in worker.tasks.values() if not task.done()]
    if running:
        await asyncio.wait(running, timeout=STOP_GRACE_SECONDS)
    main.cancel()
    await asyncio.gather(main, return_exceptions=True)
    try:
        await worker.close()
    except (RedisError, OSError):
        if context is not None:
            if context.relay is not None:
                await context.relay.stop()
                context.relay = None
            await context.close()
