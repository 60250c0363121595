"""Reading values out of marketplace payloads: exact money, text, and the one error a mapper
raises when a payload cannot be normalized (the sync then counts that order as failed)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from app.money import in_minor_units

# No marketplace amount comes near 10^30: a larger one is a damaged payload, and stored it
# would fail the insert of every other order in its batch.
_MAX_MAGNITUDE = 30


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
    if result.adjusted() >= _MAX_MAGNITUDE:
        raise MappingError(f"{field} is out of range: {value!r}")
    return result


def money_from(value: object, currency: str | None, field: str = "amount") -> Decimal:
    """An amount in exactly the currency's minor units, rounded half up: JSON 10780.2 is
    10780.20 in THB, "38000.00" is 38000 in VND. Mappers read every amount through this before
    adding any up, so sums and differences come out exact in the same units."""
    # Prices repeat across the lines and orders of a page; a Decimal is immutable, so one
    # parsed from the same text (or int) in the same currency is shared.
    if type(value) is str or type(value) is int:
        return _cached_money(value, currency, field)
    return in_minor_units(decimal_from(value, field), currency)


@lru_cache(maxsize=8192, typed=True)
def _cached_money(value: str | int, currency: str | None, field: str) -> Decimal:
    return in_minor_units(decimal_from(value, field), currency)


def text_or_none(value: object) -> str | None:
    """Trimmed text; None for missing, empty or structured values."""
    if value is None or isinstance(value, dict | list):
        return None
    text = value.strip() if type(value) is str else str(value).strip()
    return text or None


_PART_SEPARATORS = " ,\t\n"


def without_trailing_parts(text: str, parts: Iterable[str | None]) -> str | None:
    """`text` less the parts it ends with, in any order, each part at most once and only as a
    whole word: the street of a full address whose tail repeats its structured parts
    ("12 Sukhumvit Rd, Khlong Toei, Bangkok, 10110" less Khlong Toei, Bangkok, 10110 is
    "12 Sukhumvit Rd"). None when nothing else is left."""
    remaining = sorted((p for p in parts if p), key=len, reverse=True)
    rest = text.rstrip(_PART_SEPARATORS)
    matched = True
    while matched:
        matched = False
        for part in remaining:
            head = rest[: len(rest) - len(part)]
            if (
                len(rest) >= len(part)
                and rest[len(head) :].casefold() == part.casefold()
                and (not head or head[-1] in _PART_SEPARATORS)
            ):
                rest = head.rstrip(_PART_SEPARATORS)
                remaining.remove(part)
                matched = True
                break
    return rest or None
