"""Request count and latency by route template (never the raw path: ids would make every
request a new series)."""

from __future__ import annotations

import time

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.metrics import service as metrics

UNMATCHED = "unmatched"


class HttpMetricsMiddleware:
    """Pure ASGI, installed outermost so the status is the one the client got. The matched
    route is read after the app ran: Starlette's router writes it into the shared scope."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            metrics.record_http(
                route_template(scope),
                status,
                time.perf_counter() - started,
                method=str(scope.get("method", "GET")),
            )


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None) if isinstance(route, BaseRoute) else None
    return path if isinstance(path, str) and path else UNMATCHED
