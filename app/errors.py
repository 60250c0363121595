"""One error shape for every failure: {"error": {"code", "message", ...}}."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

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


class DatabaseUnavailable(ServiceUnavailableError):
    code = "database_unavailable"

    def __init__(self) -> None:
        super().__init__("The database is unavailable; retry shortly", headers={"Retry-After": "5"})


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _validation_response(exc: RequestValidationError) -> JSONResponse:
    fields = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return JSONResponse(
                error_body("invalid_json", "Request body is not valid JSON", fields=[]),
                status_code=422,
            )
        fields.append({"field": _field_name(err.get("loc", ())), "message": err.get("msg", "")})
    names = ", ".join(dict.fromkeys(f["field"] for f in fields))
    return JSONResponse(
        error_body("validation_error", f"Invalid request: {names}", fields=fields),
        status_code=422,
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message, **exc.extra),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
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

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _db_down(request: Request, exc: DBAPIError) -> JSONResponse:
        logger.error("database unavailable: %s", type(exc).__name__)
        return JSONResponse(
            error_body("database_unavailable", "The database is unavailable; retry shortly"),
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error")
        return JSONResponse(
            error_body("internal_error", "An unexpected error occurred"), status_code=500
        )
