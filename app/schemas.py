"""Base pydantic models (camelCase on the wire through one alias generator) and the shared
request types: text PostgreSQL can store, bounded paging integers, documented error statuses."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, ConfigDict, field_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

T = TypeVar("T")

# PostgreSQL's text types cannot hold NUL, and UTF-8 cannot encode an unpaired surrogate
# (which JSON's "\ud800" escape produces): either would fail deep in the driver as a 500.
_UNSTORABLE_TEXT = re.compile("[\x00\ud800-\udfff]")

# Paging offsets go into SQL as bigint; this bound keeps them far from overflow (and no
# listing has two billion rows to skip).
MAX_OFFSET = 2**31 - 1
MAX_PAGE_SIZE = 200


def unstorable_text(value: str) -> str | None:
    """Why PostgreSQL cannot store `value` as text, or None when it can."""
    found = _UNSTORABLE_TEXT.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "must not contain NUL characters"
    return "must be valid Unicode text (it holds an unpaired surrogate)"


def _first_unstorable(value: Any) -> str | None:
    if isinstance(value, str):
        return unstorable_text(value)
    if isinstance(value, Mapping):
        for key, item in value.items():
            problem = _first_unstorable(key) or _first_unstorable(item)
            if problem:
                return problem
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            problem = _first_unstorable(item)
            if problem:
                return problem
    # Nested models ran this check on their own fields already.
    return None


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        problem = _first_unstorable(value)
        if problem is not None:
            raise PydanticCustomError("unstorable_text", problem)
        return value


class DataResponse(CamelModel, Generic[T]):
    data: T


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries documenting the one error shape for the given status codes."""
    return {code: {"model": ErrorResponse} for code in codes}


OffsetQuery = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Rows to skip (offset paging)")]
LimitQuery = Annotated[
    int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"Page size, at most {MAX_PAGE_SIZE}")
]
