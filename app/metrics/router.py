"""`GET /metrics`: Prometheus text format. Without METRICS_TOKEN no auth (like `/health`; serve
it on a network only the scraper reaches) and no per-tenant label; with it, a bearer token."""

from __future__ import annotations

import asyncio
import contextlib
import hmac

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from redis.exceptions import RedisError

from app.config import Settings
from app.errors import UnauthorizedError
from app.metrics import service
from app.metrics.collector import render, take_snapshot
from app.schemas import error_responses

router = APIRouter(tags=["operations"])
FLUSH_TIMEOUT_SECONDS = 1.0


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"},
        **error_responses(401),
    },
)
async def metrics(request: Request) -> Response:
    """The whole deployment's counters (every API process and worker) and live gauges. With
    METRICS_TOKEN set it needs `Authorization: Bearer <METRICS_TOKEN>` and also gives the
    sync lag per `connection_id`."""
    settings: Settings = request.app.state.settings
    token = settings.metrics_token
    if token is not None:
        _check_bearer(request, token.get_secret_value())
    redis = request.app.state.redis
    # This process's latest counts first, so a scrape right after an action shows it.
    with contextlib.suppress(RedisError, OSError, TimeoutError):
        async with asyncio.timeout(FLUSH_TIMEOUT_SECONDS):
            await service.flush(redis)
    snapshot = await take_snapshot(redis, request.app.state.sessionmaker)
    body = render(snapshot, per_connection=token is not None)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _check_bearer(request: Request, expected: str) -> None:
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        presented.strip().encode(), expected.encode()
    ):
        raise UnauthorizedError("/metrics needs Authorization: Bearer <METRICS_TOKEN>")
