"""Bulk requests: one result per row, each row applied in its own savepoint, so a bad row
never stops the others. A row that loses a deadlock is retried (the savepoint rolled back
releases what the row locked, so the other transaction can go on); one that waited out the
lock timeout has waited long enough and is reported `busy`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from enum import StrEnum

from pydantic import Field
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import AppError, is_deadlock, is_lock_timeout
from app.schemas import CamelModel

logger = logging.getLogger("app.bulk")

ROW_ATTEMPTS = 3


class RowStatus(StrEnum):
    OK = "ok"
    ERROR = "error"


class RowError(CamelModel):
    code: str
    message: str
    field: str | None = Field(description="The field at fault (of the row, or the request's)")


class RowProblem(Exception):
    """A row that cannot be applied, as its result says it."""

    def __init__(self, code: str, message: str, field: str | None) -> None:
        super().__init__(message)
        self.error = RowError(code=code, message=message, field=field)


def _field_of(exc: AppError, default: str | None) -> str | None:
    fields = exc.extra.get("fields")
    if isinstance(fields, list) and fields and isinstance(fields[0], dict):
        name = fields[0].get("field")
        if isinstance(name, str):
            return name
    return default


async def apply_row(
    session: AsyncSession,
    apply: Callable[[], Awaitable[object]],
    *,
    field: str | None,
    attempts: int = ROW_ATTEMPTS,
) -> RowError | None:
    """Run `apply` in a savepoint of the caller's transaction: None when it worked, else the
    row's error (what it did is rolled back). `field`: what an error names by default."""
    for attempt in range(1, attempts + 1):
        try:
            async with session.begin_nested():
                await apply()
            return None
        except RowProblem as exc:
            return exc.error
        except AppError as exc:
            return RowError(code=exc.code, message=exc.message, field=_field_of(exc, field))
        except DBAPIError as exc:
            if is_deadlock(exc) and attempt < attempts:
                continue
            if is_deadlock(exc) or is_lock_timeout(exc):
                return RowError(
                    code="busy",
                    message="Other changes kept this row locked; nothing was changed, retry it",
                    field=field,
                )
            logger.warning("bulk row not applied", extra={"error": type(exc.orig).__name__})
            return RowError(code="not_applied", message="The row could not be stored", field=field)
    raise AssertionError("unreachable")
