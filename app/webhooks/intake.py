"""The push POST paths as a bare ASGI app.

A marketplace waits on these paths (Shopee 3 s, Lazada 500 ms) and they carry most of the
API's requests, so they skip FastAPI's per-request machinery (dependency solving, `Request`
and response objects, background tasks): read the capped body, verify and store through the
`Receiver` (which asks for the shop's drain job in the same transaction), answer. The FastAPI
routes of the same paths stay for the OpenAPI document and are never reached by a POST."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import AppError, error_response, unexpected_error_response
from app.logging import RequestIdMiddleware
from app.platforms.types import PlatformCode
from app.webhooks import service

PUSH_URL = "/api/webhooks/marketplace"
# The platform each push path names (None: told apart by the request).
PUSH_PATHS: dict[str, PlatformCode | None] = {
    PUSH_URL: None,
    **{f"{PUSH_URL}/{platform.value}": platform for platform in PlatformCode},
}


def receiver_for(state: Any) -> service.Receiver:
    """The process's receiver, rebuilt when the app's database is replaced."""
    receiver: service.Receiver | None = getattr(state, "webhook_receiver", None)
    if receiver is None or receiver.sessionmaker is not state.sessionmaker:
        receiver = service.Receiver(
            sessionmaker=state.sessionmaker,
            cipher=state.cipher,
            public_base_url=state.settings.public_base_url,
            max_age=timedelta(hours=state.settings.webhook_max_age_hours),
            push_options=state.settings.tiktok_options(),
        )
        state.webhook_receiver = receiver
    return receiver


def route_path(scope: Scope) -> str:
    """The path the routes see (without the app's root path, as Starlette matches it)."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path + "/"):
        return path[len(root_path) :]
    return path


class _Disconnected(Exception):
    """The sender went away before its body arrived: nobody is left to answer."""


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The raw body, refused past `limit` bytes without reading the rest."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise service.PushTooLarge()
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise service.PushTooLarge()
        if not message.get("more_body", False):
            if not chunks:
                return chunk  # the usual case: the whole body in one message
            chunks.append(chunk)
            return b"".join(chunks)
        chunks.append(chunk)


def _headers(scope: Scope) -> dict[str, str]:
    # Reversed so that, as with Starlette's Headers, the first of repeated headers counts.
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in reversed(scope["headers"])
    }


def _accepted() -> tuple[Message, Message]:
    # New dicts each time: a middleware may add headers to the message it is given.
    return (
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]},
        {"type": "http.response.body", "body": b""},
    )


class PushIntake:
    """ASGI app of `POST /api/webhooks/marketplace[/{platformCode}]`. Same answers as the
    documented routes: 200 with an empty body once the event is stored, the error shape
    otherwise."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope["app"].state
        receiver = receiver_for(state)
        try:
            body = await read_body(scope, receive, service.MAX_BODY_BYTES)
            await receiver.receive(
                platform=PUSH_PATHS.get(route_path(scope)),
                path=scope["path"],
                request_base_url=(
                    None if receiver.public_base_url else str(Request(scope).base_url)
                ),
                headers=_headers(scope),
                body=body,
            )
        except _Disconnected:
            return
        except AppError as exc:
            await error_response(exc)(scope, receive, send)
            return
        except Exception as exc:  # the answer UnhandledErrorMiddleware would give: 503 or 500
            await unexpected_error_response(exc)(scope, receive, send)
            return
        start, end = _accepted()
        await send(start)
        await send(end)


class PushIntakeMiddleware:
    """Outermost middleware that sends the push POSTs to `PushIntake` before the app's own
    middleware and router (about 40% of a push's CPU under load); everything else goes on
    to the app. Only the request id is kept from the stack it skips: the pushes need no CORS,
    have their own body cap, and `PushIntake` answers its own errors."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.intake = RequestIdMiddleware(PushIntake())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and route_path(scope) in PUSH_PATHS
        ):
            await self.intake(scope, receive, send)
        else:
            await self.app(scope, receive, send)
