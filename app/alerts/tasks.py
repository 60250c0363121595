"""Jobs of the alerts domain (registered by app/worker.py)."""

from __future__ import annotations

import uuid
from typing import Any, cast

from arq import cron, func
from arq.typing import WorkerCoroutine

from app.alerts import service
from app.worker_context import JobContext


async def deliver_alert(ctx: JobContext, alert_id: str) -> str:
    return await service.deliver(ctx["app"], uuid.UUID(alert_id))


async def sweep_alerts(ctx: JobContext) -> int:
    """Cron: queue pending alerts that are due (raised with no job queued, or retried)."""
    return await service.sweep(ctx["app"])


async def scan_expiring_authorizations(ctx: JobContext) -> int:
    """Cron: alert 7 days before a connection's refresh token expires."""
    return await service.scan_expiring_authorizations(ctx["app"])


def _job(function: Any) -> WorkerCoroutine:
    # Our jobs take the typed JobContext; arq types its context as a plain dict.
    return cast(WorkerCoroutine, function)


FUNCTIONS: list[Any] = [
    # keep_result=0 frees the job id once the job ends, so the sweeper can queue a retry under
    # the same id; the row's attempt count has the last word on giving up.
    func(
        _job(deliver_alert),
        name=service.DELIVER_JOB,
        keep_result=0,
        max_tries=service.MAX_ATTEMPTS + 1,
        timeout=service.POST_TIMEOUT_SECONDS * 3,
    ),
]
CRON_JOBS: list[Any] = [
    cron(_job(sweep_alerts), second=set(range(3, 60, 10)), unique=True, timeout=60),
    # Every six hours: the dedupe key sends one alert per expiry, and a worker down at one run
    # is caught by the next.
    cron(
        _job(scan_expiring_authorizations),
        hour={2, 8, 14, 20},
        minute={23},
        second={0},
        unique=True,
        timeout=300,
    ),
]
