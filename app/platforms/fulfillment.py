"""Fulfillment in one shape for every marketplace: what a shipment needs, shipping, tracking,
labels and cancellations. Each platform's `fulfillment.py` turns these into its own calls."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

ShipMethod = Literal["pickup", "dropoff", "tracking"]
LabelFormat = Literal["a6", "a4"]
T = TypeVar("T")


@dataclass(slots=True)
class ShipTarget:
    """One order (or one package of a split order) to ship. `idempotency_key` is stable across
    retries of the same fulfillment, so a platform that dedupes (Meta) never ships twice."""

    external_order_id: str
    package_number: str | None = None
    tracking_number: str | None = None
    carrier: str | None = None
    idempotency_key: str | None = None


@dataclass(slots=True)
class ShipRequest:
    """What every target of one call shares."""

    method: ShipMethod
    address_id: str | None = None
    pickup_time_id: str | None = None


@dataclass(slots=True)
class ShipResult:
    external_order_id: str
    ok: bool
    package_number: str | None = None
    message: str | None = None
    tracking_number: str | None = None
    carrier: str | None = None
    package_id: str | None = None
    # The platform says this package already left: shown as shipped-before, not a new ship.
    already_shipped: bool = False


@dataclass(slots=True)
class ShippingOptions:
    methods: list[str]
    pickup_addresses: list[dict[str, Any]] = field(default_factory=list)
    dropoff_branches: list[dict[str, Any]] = field(default_factory=list)
    carriers: list[dict[str, str]] = field(default_factory=list)
    packages: list[dict[str, Any]] = field(default_factory=list)
    info_needed: dict[str, list[str]] = field(default_factory=dict)


@dataclass(slots=True)
class CancelReason:
    code: str
    name: str


@dataclass(slots=True)
class LabelResult:
    """One order's airway bill, or why not yet (`ready` False: ask again after `retry_after`)."""

    external_order_id: str
    ready: bool
    pdf: bytes | None = None
    message: str | None = None


class LabelNotReady(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def is_pdf(content: bytes) -> bool:
    return content[:5] == b"%PDF-"
