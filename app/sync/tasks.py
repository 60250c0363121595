"""Sync jobs: run one sync (by log id), start the syncs schedules say are due, re-queue syncs
whose worker died, and the daily reconcile."""

from __future__ import annotations

import uuid
from datetime import timedelta

from app.sync import service
from app.sync.engine import run_sync
from app.worker_context import JobContext


def _stale_after(ctx: JobContext) -> timedelta:
    return timedelta(seconds=ctx["app"].settings.sync_stale_seconds)


async def sync_orders(ctx: JobContext, sync_log_id: str) -> str:
    return await run_sync(ctx["app"], uuid.UUID(sync_log_id))


async def schedule_due_syncs(ctx: JobContext) -> int:
    """Cron: start a sync for each connection whose `nextSyncAt` has come."""
    async with ctx["app"].unit_of_work() as uow:
        return await service.start_due_syncs(uow, _stale_after(ctx))


async def recover_dead_syncs(ctx: JobContext) -> int:
    """Cron: a sync whose worker died (no heartbeat, lock free) is re-queued to resume. The
    heartbeat is written every quarter of SYNC_STALE_SECONDS, so half of it without one is
    already a sign; the lock check makes the call exact."""
    async with ctx["app"].unit_of_work() as uow:
        return await service.requeue_dead_runs(uow, _stale_after(ctx) / 2)


async def reconcile_all(ctx: JobContext) -> int:
    """Cron, daily: re-read the last RECONCILE_DAYS of every live shop."""
    async with ctx["app"].unit_of_work() as uow:
        return await service.start_reconciles(uow, _stale_after(ctx))
