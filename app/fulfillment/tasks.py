"""Jobs of the fulfillment domain (registered by app/worker.py)."""

from __future__ import annotations

import uuid
from typing import Any

from arq import cron, func

from app.fulfillment import service
from app.fulfillment.service import SHIP_JOB, TRACK_JOB
from app.worker_context import JobContext, arq_job


async def ship_fulfillments(ctx: JobContext, fulfillment_id: str) -> int:
    """Ship every fulfillment waiting for the connection of `fulfillment_id`."""
    return await service.ship_waiting(ctx["app"], uuid.UUID(fulfillment_id))


async def read_fulfillment_tracking(
    ctx: JobContext, fulfillment_id: str, source: str = "poll"
) -> str | None:
    """Read a shipment's tracking number (`source` "push": once, after a platform push)."""
    return await service.read_tracking(
        ctx["app"], uuid.UUID(fulfillment_id), pushed=source == "push"
    )


async def sweep_fulfillments(ctx: JobContext) -> int:
    """Every minute: re-ask for ship jobs that died or were lost, and lost tracking reads."""
    return await service.sweep(ctx["app"])


FUNCTIONS: list[Any] = [
    func(arq_job(ship_fulfillments), name=SHIP_JOB),
    func(arq_job(read_fulfillment_tracking), name=TRACK_JOB),
]
CRON_JOBS: list[Any] = [
    cron(arq_job(sweep_fulfillments), second={17}, unique=True, timeout=60),
]
