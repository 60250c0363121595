"""The figures a master SKU shows and what each channel is told."""

from __future__ import annotations

from dataclasses import dataclass

# Order statuses that give their units back, and those that have left the shelf for good.
RELEASING_STATUSES = frozenset({"cancelled", "returned", "failed"})
FULFILLED_STATUSES = frozenset({"shipped", "delivered", "completed"})


@dataclass(slots=True)
class Balance:
    """available - oversold, kept as the two non-negative counters the API shows."""

    available: int
    oversold: int

    @property
    def value(self) -> int:
        return self.available - self.oversold

    @classmethod
    def of(cls, value: int) -> Balance:
        return cls(max(0, value), max(0, -value))


def sellable_quantity(
    available: int, buffer: int | None, zero_below: int | None, max_quantity: int | None
) -> int:
    """What a channel may still sell: max(0, available - buffer), 0 when available is under
    zeroBelow, at most maxQuantity."""
    if zero_below is not None and available < zero_below:
        return 0
    quantity = max(0, available - (buffer or 0))
    if max_quantity is not None:
        quantity = min(quantity, max_quantity)
    return quantity
