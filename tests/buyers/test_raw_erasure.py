"""Each mapper's erase_buyer_data: the raw payload loses every buyer field and nothing else."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from app.buyers.service import RAW_ERASERS
from app.platforms.types import PlatformCode
from tests.buyers.payloads import RAW_PAYLOADS, SHOP, buyer_values, leaks, normalized

PLATFORMS = sorted(RAW_PAYLOADS)


def eraser(platform: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return RAW_ERASERS[platform]


def test_every_platform_has_an_eraser() -> None:
    assert set(RAW_ERASERS) == {p.value for p in PlatformCode}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_erased_payload_holds_no_buyer_data(platform: str) -> None:
    for index in range(SHOP.order_count):
        seed = SHOP.order(index)
        raw = RAW_PAYLOADS[platform](seed)
        assert leaks(raw, buyer_values(seed))  # the fixture does carry buyer data
        assert leaks(eraser(platform)(raw), buyer_values(seed)) == []


@pytest.mark.parametrize("platform", PLATFORMS)
def test_erased_payload_still_maps_to_the_same_order_without_its_buyer(platform: str) -> None:
    seed = SHOP.order(1)
    raw = RAW_PAYLOADS[platform](seed)
    before, after = normalized(platform, raw), normalized(platform, eraser(platform)(raw))
    assert (after.buyer_name, after.buyer_phone, after.buyer_email) == (None, None, None)
    assert after.shipping_address is None
    kept = ("external_order_id", "status", "currency", "subtotal", "shipping_fee", "total")
    assert [getattr(after, k) for k in kept] == [getattr(before, k) for k in kept]
    assert after.items == before.items
    assert after.created_at == before.created_at


@pytest.mark.parametrize("platform", PLATFORMS)
def test_erasing_twice_changes_nothing_more_and_leaves_the_input_alone(platform: str) -> None:
    raw = RAW_PAYLOADS[platform](SHOP.order(2))
    untouched = copy.deepcopy(raw)
    once = eraser(platform)(raw)
    assert eraser(platform)(once) == once
    assert raw == untouched


def test_lazada_erases_both_addresses_and_the_tax_identity() -> None:
    raw = RAW_PAYLOADS["lazada"](SHOP.order(3))
    raw["order"]["national_registration_number"] = "1101700203451"
    raw["order"]["address_billing"]["address1"] = "Billing street 9"
    raw["items"][0]["buyer_id"] = 555001
    erased = eraser("lazada")(raw)
    assert leaks(erased, ["1101700203451", "Billing street 9", "555001"]) == []
    assert erased["order"]["order_id"] == raw["order"]["order_id"]
    assert len(erased["items"]) == len(raw["items"])
