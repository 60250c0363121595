"""Amounts in their currency's minor units: the one rule the mappers normalize with and the
API renders with. Every amount is a decimal string with exactly the currency's minor units
("10780.20", "0.00" in THB; "38000" in VND), rounded half up when a value has more digits."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Context, Decimal

# ISO 4217 minor units of the currencies the marketplaces trade in. IDR is 2 in ISO 4217,
# but no marketplace prices in sen and INTERFACE.md pins it to 0.
MINOR_UNITS: dict[str, int] = {
    "THB": 2,
    "MYR": 2,
    "SGD": 2,
    "PHP": 2,
    "USD": 2,
    "VND": 0,
    "IDR": 0,
    "BRL": 2,
    "CNY": 2,
    "EUR": 2,
    "GBP": 2,
    "HKD": 2,
    "TWD": 2,
    "JPY": 0,
    "KRW": 0,
}
DEFAULT_MINOR_UNITS = 2
_QUANTUM = {places: Decimal(1).scaleb(-places) for places in range(5)}
# The default context holds 28 digits; a stored amount may need more and must still render.
# Building a Context costs more than the rounding itself, so the usual one is built once.
_DIGITS = 28
_HALF_UP = Context(prec=_DIGITS, rounding=ROUND_HALF_UP)


def minor_units(currency: str | None) -> int:
    """Digits after the decimal point for `currency`; 2 for a code not in the table."""
    return MINOR_UNITS.get((currency or "").strip().upper(), DEFAULT_MINOR_UNITS)


def in_minor_units(amount: Decimal, currency: str | None) -> Decimal:
    """`amount` rounded half up to exactly the currency's minor units: Decimal("38") is
    Decimal("38.00") in THB, Decimal("38000.00") is Decimal("38000") in VND. Raises
    decimal.InvalidOperation for a non-finite amount."""
    places = minor_units(currency)
    digits = amount.adjusted() + places + 2 if amount.is_finite() else _DIGITS
    context = _HALF_UP if digits <= _DIGITS else Context(prec=digits, rounding=ROUND_HALF_UP)
    result = amount.quantize(_QUANTUM[places], context=context)
    return result.copy_abs() if result.is_zero() else result  # never "-0.00"


def format_amount(amount: Decimal | str, currency: str | None) -> str:
    """The wire string of an amount, from a Decimal or the database's numeric text."""
    if isinstance(amount, str):
        # Fast path for plain numeric text (what PostgreSQL's numeric::text gives): pad the
        # fraction without a Decimal round trip. Anything else goes through Decimal.
        places = minor_units(currency)
        whole, dot, fraction = amount.partition(".")
        digits = whole[1:] if whole.startswith("-") else whole
        if (
            amount.isascii()
            and digits.isdigit()
            and (fraction.isdigit() or not dot)
            and len(fraction) <= places
            and (places or not dot)
        ):
            return f"{whole}.{fraction.ljust(places, '0')}" if places else whole
        amount = Decimal(amount)
    return format(in_minor_units(amount, currency), "f")
