"""Reading values out of marketplace payloads: exact money, text, and the one error a mapper
raises when a payload cannot be normalized (the sync then counts that order as failed)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation


class MappingError(ValueError):
    """A payload the mapper cannot turn into a normalized order or product; the message names
    the bad field."""


def decimal_from(value: object, field: str = "amount") -> Decimal:
    """An exact Decimal from a platform's JSON number or string. Through `str`, so a JSON float
    such as 19.99 stays 19.99 instead of its binary approximation."""
    if value is None or isinstance(value, bool):
        raise MappingError(f"{field} is missing or not a number: {value!r}")
    if isinstance(value, Decimal):
        result = value
    else:
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation as exc:
            raise MappingError(f"{field} is not a number: {value!r}") from exc
    if not result.is_finite():
        raise MappingError(f"{field} is not a finite number: {value!r}")
    return result


def text_or_none(value: object) -> str | None:
    """Trimmed text; None for missing, empty or structured values."""
    if value is None or isinstance(value, dict | list):
        return None
    text = value.strip() if type(value) is str else str(value).strip()
    return text or None
