"""One error shape for every failure: {"error": {"code", "message", ...}}."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import asyncpg  # type: ignore[import-untyped]
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.schemas import unstorable_text

logger = logging.getLogger("app.errors")


class AppError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        self.headers = headers
        self.extra = extra


class NotFoundError(AppError):
    status_code = 404
    code = "not_found"


class ConflictError(AppError):
    status_code = 409
    code = "conflict"


class ValidationFailed(AppError):
    """A 422 naming the fields at fault, in the one shape: `fields: [{field, message}]`."""

    status_code = 422
    code = "validation_error"

    def __init__(
        self,
        message: str,
        *,
        fields: Sequence[str] = (),
        code: str | None = None,
        field_messages: Sequence[FieldProblem] = (),
    ) -> None:
        problems = [{"field": name, "message": message} for name in fields]
        problems += [{"field": p.field, "message": p.message} for p in field_messages]
        super().__init__(message, code=code, fields=problems)


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str
    message: str


class UnauthorizedError(AppError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(
            message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}, **extra
        )


class ForbiddenError(AppError):
    status_code = 403
    code = "forbidden"


class ServiceUnavailableError(AppError):
    status_code = 503
    code = "service_unavailable"


# --- named errors: raise sites say what happened, the class knows its status and code -------


class ConnectionExists(ConflictError):
    code = "connection_exists"

    def __init__(self, connection_id: object) -> None:
        super().__init__("This shop is already connected", connectionId=str(connection_id))


class ConnectionDisconnected(ConflictError):
    code = "connection_disconnected"

    def __init__(self, message: str = "This connection is disconnected; connect the shop again"):
        super().__init__(message)


class ConnectionMisconfigured(ConflictError):
    """The connection's marketplace host is no longer the configured one (the message names
    it): nothing is sent with its tokens."""

    code = "connection_misconfigured"

    def __init__(self, reason: str | None) -> None:
        super().__init__(reason or "This connection's marketplace host is not configured")


class SyncAlreadyRunning(ConflictError):
    code = "sync_running"

    def __init__(self, sync_log_id: object | None) -> None:
        super().__init__(
            "A sync is already running for this connection",
            syncLogId=str(sync_log_id) if sync_log_id is not None else None,
        )


class ReauthRequired(ConflictError):
    code = "reauth_required"

    def __init__(self, reason: str | None) -> None:
        super().__init__(
            "The marketplace no longer accepts this connection's credentials; re-authorize it "
            f"(PATCH the connection with new credentials). Reason: {reason}"
        )


class MarketplaceUnavailable(AppError):
    """The marketplace could not be reached to check something: retry later."""

    status_code = 502
    code = "marketplace_unavailable"


class MarketplaceRejectedCredentials(AppError):
    """The marketplace refused the credentials, or they belong to another shop."""

    status_code = 400
    code = "marketplace_connection_failed"


class QueueUnavailable(ServiceUnavailableError):
    code = "queue_unavailable"

    def __init__(self) -> None:
        super().__init__(
            "The job queue (Redis) is unavailable; nothing was changed, retry shortly",
            headers={"Retry-After": "5"},
        )


class ConnectionBusy(ServiceUnavailableError):
    """Another request or a token refresh holds the connection's row past `lock_timeout`."""

    code = "connection_busy"

    def __init__(self) -> None:
        super().__init__(
            "This connection is being changed by another request; nothing was changed, "
            "retry shortly",
            headers={"Retry-After": "2"},
        )


# PostgreSQL's SQLSTATE for "could not obtain lock": a `lock_timeout` (or NOWAIT) ran out.
LOCK_NOT_AVAILABLE = "55P03"


def is_lock_timeout(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) == (
        LOCK_NOT_AVAILABLE
    )


# Deadlock and serialization failure: PostgreSQL aborted this transaction so another could go
# on; running it again is safe.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def is_deadlock(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in (
        RETRYABLE_SQLSTATES
    )


class ConcurrentChange(ConflictError):
    """Jobs kept writing the same rows: the change was retried and still collided."""

    code = "concurrent_change"

    def __init__(self) -> None:
        super().__init__(
            "Jobs of this connection were writing the same rows; nothing was changed, retry",
            headers={"Retry-After": "2"},
        )


class DatabaseUnavailable(ServiceUnavailableError):
    code = "database_unavailable"

    def __init__(self) -> None:
        super().__init__("The database is unavailable; retry shortly", headers={"Retry-After": "5"})


class BodyTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"The request body is larger than {max_bytes} bytes", maxBytes=max_bytes)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def error_response(exc: AppError) -> JSONResponse:
    return JSONResponse(
        error_body(exc.code, exc.message, **exc.extra),
        status_code=exc.status_code,
        headers=exc.headers,
    )


# --- which failures mean "the database is gone": the one list ---------------------------

# What asyncpg raises when the server is unreachable, restarting, shutting down or full.
_DRIVER_UNAVAILABLE = (
    asyncpg.PostgresConnectionError,  # includes ConnectionDoesNotExistError
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)
# Raw socket failures count only while opening a connection: elsewhere an OSError can be
# anything (a marketplace call, a file), and must not be reported as the database.
_CONNECT_UNAVAILABLE = (OSError, TimeoutError)


def is_database_unavailable(exc: BaseException, *, connecting: bool = False) -> bool:
    """True when `exc` (or what caused it) says the database cannot be reached right now."""
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, (DatabaseUnavailable, PoolTimeoutError, *_DRIVER_UNAVAILABLE)):
            return True
        if isinstance(current, DBAPIError) and (
            current.connection_invalidated or isinstance(current, OperationalError)
        ):
            return True
        if connecting and isinstance(current, _CONNECT_UNAVAILABLE):
            return True
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return False


# --- request validation -----------------------------------------------------------------


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _invalid_json() -> JSONResponse:
    return JSONResponse(
        error_body("invalid_json", "Request body is not valid JSON", fields=[]), status_code=422
    )


def _validation_fields_response(fields: list[dict[str, str]]) -> JSONResponse:
    names = ", ".join(dict.fromkeys(f["field"] for f in fields))
    return JSONResponse(
        error_body("validation_error", f"Invalid request: {names}", fields=fields),
        status_code=422,
    )


def _validation_response(exc: RequestValidationError) -> JSONResponse:
    fields = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return _invalid_json()
        fields.append({"field": _field_name(err.get("loc", ())), "message": err.get("msg", "")})
    return _validation_fields_response(fields)


def _is_unparsable_body(exc: StarletteHTTPException) -> bool:
    # FastAPI turns what json.loads raises besides JSONDecodeError (invalid UTF-8, integers
    # over Python's digit limit, nesting past the recursion limit) into a bare 400.
    return exc.status_code == 400 and isinstance(exc.__cause__, ValueError | RecursionError)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if _is_unparsable_body(exc):
            return _invalid_json()
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        return JSONResponse(
            error_body("conflict", "The request conflicts with existing data"), status_code=409
        )


def unexpected_error_response(exc: Exception) -> JSONResponse:
    """The answer to an exception no handler took: 503 when the database is gone or a row
    stayed locked past `lock_timeout`, else 500."""
    if is_lock_timeout(exc):
        logger.warning("row lock timeout: %s", type(exc).__name__)
        return error_response(ConnectionBusy())
    if is_database_unavailable(exc):
        logger.warning("database unavailable: %s", type(exc).__name__)
        return error_response(DatabaseUnavailable())
    logger.exception("unhandled error", exc_info=exc)
    return JSONResponse(
        error_body("internal_error", "An unexpected error occurred"), status_code=500
    )


# --- ASGI middleware: the edge, before routing, parsing and auth ---------------------------


class UnhandledErrorMiddleware:
    """Renders what escaped every handler in the one error shape. It sits inside the
    request-id middleware, so the 500 carries `X-Request-ID` and its log line the request id
    (Starlette's own last-resort handler runs outside all user middleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise
            await unexpected_error_response(exc)(scope, receive, send)


class BodyLimitMiddleware:
    """Refuses a body over `max_bytes` with 413 before anything reads it: at once when
    Content-Length says so, else when the streamed bytes pass the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await error_response(BodyTooLarge(self.max_bytes))(scope, receive, send)
            return
        received = 0
        exceeded = started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # whatever the app made of the cut-off body; the 413 below replaces it
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded or started:
                raise
        if exceeded and not started:
            await error_response(BodyTooLarge(self.max_bytes))(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class StorableTextMiddleware:
    """422 for a NUL in any query parameter or in the path, whatever the route: PostgreSQL
    text cannot hold it. (JSON bodies are checked by `CamelModel`.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problems = _unstorable_request_text(scope)
            if problems:
                await _validation_fields_response(problems)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _unstorable_request_text(scope: Scope) -> list[dict[str, str]]:
    problems = []
    if "\x00" in scope["path"]:
        problems.append({"field": "path", "message": "must not contain NUL characters"})
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        # Decoded as Starlette decodes it, so the names are the ones the routes see.
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            problem = unstorable_text(name) or unstorable_text(value)
            if problem:
                problems.append({"field": name.replace("\x00", "\\0"), "message": problem})
    return problems
