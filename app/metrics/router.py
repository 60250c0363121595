"""`GET /metrics`: Prometheus text format, no auth (like `/health`); serve it on a network
only the scraper reaches."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from redis.exceptions import RedisError

from app.metrics import service
from app.metrics.collector import render, take_snapshot

router = APIRouter(tags=["operations"])
FLUSH_TIMEOUT_SECONDS = 1.0


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
async def metrics(request: Request) -> Response:
    """The whole deployment's counters (every API process and worker) and live gauges."""
    redis = request.app.state.redis
    # This process's latest counts first, so a scrape right after an action shows it.
    with contextlib.suppress(RedisError, OSError, TimeoutError):
        async with asyncio.timeout(FLUSH_TIMEOUT_SECONDS):
            await service.flush(redis)
    snapshot = await take_snapshot(redis, request.app.state.sessionmaker)
    return Response(render(snapshot), media_type=CONTENT_TYPE_LATEST)
