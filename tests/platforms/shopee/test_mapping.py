"""The Shopee mapper on payloads the sandbox produces, and on damaged versions of them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.platforms.shopee.client import ORDER_DETAIL_FIELDS
from app.platforms.shopee.mapping import (
    ORDER_STATUSES,
    OrderMappingError,
    map_order,
    map_product,
    map_status,
)
from app.platforms.types import OrderStatus
from app.sandbox.seed import SeededShop
from app.sandbox.shopee import ShopeeShop, render_item, render_models, render_order

START = datetime(2026, 1, 1, tzinfo=UTC)
ALL_FIELDS = set(ORDER_DETAIL_FIELDS)

# Every status of reference §1.5.
SHOPEE_STATUSES = {
    "UNPAID",
    "READY_TO_SHIP",
    "PROCESSED",
    "RETRY_SHIP",
    "SHIPPED",
    "TO_CONFIRM_RECEIVE",
    "IN_CANCEL",
    "CANCELLED",
    "TO_RETURN",
    "COMPLETED",
    "INVOICE_PENDING",
    "PENDING",
}


def make_shop(seed: str, order_count: int = 1000) -> ShopeeShop:
    seeded = SeededShop(
        seed=seed, order_count=order_count, start=START, end=START + timedelta(days=90)
    )
    return ShopeeShop(shop_id=1, partner_id=2, partner_key="k", seeded=seeded, name="shop")


def wire(payload: dict[str, Any]) -> dict[str, Any]:
    """What the client sees: the payload after a JSON round trip."""
    decoded: dict[str, Any] = json.loads(json.dumps(payload, ensure_ascii=False))
    return decoded


def test_every_shopee_status_has_a_mapping() -> None:
    assert set(ORDER_STATUSES) == SHOPEE_STATUSES
    assert OrderStatus.UNKNOWN not in ORDER_STATUSES.values()
    assert map_status("SOMETHING_NEW") is OrderStatus.UNKNOWN


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.text(min_size=1, max_size=12),
    index=st.integers(min_value=0, max_value=999),
    pending=st.booleans(),
)
def test_sandbox_orders_map_without_losing_precision(seed: str, index: int, pending: bool) -> None:
    shop = make_shop(seed)
    source = shop.seeded.order(index)
    order = map_order(wire(render_order(source, shop, ALL_FIELDS, pending)))
    assert order.status is OrderStatus(source.status)
    assert order.shipping_fee == source.shipping_fee
    assert [i.unit_price for i in order.items] == [i.unit_price for i in source.items]
    assert all(isinstance(i.unit_price, Decimal) for i in order.items)
    if order.raw_status == "UNPAID":
        assert order.total == order.subtotal + order.shipping_fee
    else:
        assert order.total == source.total
        assert order.discount >= 0
        assert order.subtotal + order.shipping_fee - order.discount == order.total
    assert order.created_at.tzinfo is UTC and order.updated_at == source.updated_at
    assert order.paid_at == source.paid_at


@st.composite
def damaged_orders(draw: st.DrawFn) -> dict[str, Any]:
    shop = make_shop(draw(st.sampled_from(["a", "b", "c"])), 200)
    payload = wire(
        render_order(shop.seeded.order(draw(st.integers(0, 199))), shop, ALL_FIELDS, True)
    )
    junk = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=8),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    )
    for key in draw(st.lists(st.sampled_from(sorted(payload)), max_size=4)):
        payload[key] = draw(junk)
    items = payload.get("item_list")
    if isinstance(items, list) and items and isinstance(items[0], dict) and draw(st.booleans()):
        item = dict(items[0])
        item[draw(st.sampled_from(sorted(item)))] = draw(junk)
        items[0] = item
    return payload


@settings(max_examples=400, deadline=None)
@given(payload=damaged_orders())
def test_mapper_never_crashes_on_damaged_payloads(payload: dict[str, Any]) -> None:
    try:
        order = map_order(payload)
    except OrderMappingError:
        return
    assert isinstance(order.total, Decimal) and order.total.is_finite()
    assert isinstance(order.external_order_id, str) and order.external_order_id


@settings(max_examples=100, deadline=None)
@given(seed=st.text(min_size=1, max_size=8), index=st.integers(0, 29))
def test_sandbox_items_map_to_products(seed: str, index: int) -> None:
    shop = make_shop(seed, 0)
    shop.seeded.product_count = 30
    source = shop.seeded.products[index]
    base = wire(render_item(source, shop))
    models = wire(render_models(source)) if base["has_model"] else None
    product = map_product(base, models)
    assert [(v.sku, v.price, v.stock) for v in product.variations] == [
        (v.sku, v.price, v.stock) for v in source.variations
    ]


# --- money in minor units, structured address ------------------------------------------------

MINOR_UNITS = {"THB": 2, "MYR": 2, "SGD": 2, "PHP": 2, "USD": 2, "VND": 0, "IDR": 0, "ABC": 2}


def amounts_of(order: Any) -> list[Decimal]:
    items = [amount for i in order.items for amount in (i.unit_price, i.discount)]
    return [order.subtotal, order.shipping_fee, order.discount, order.total, *items]


def places(amount: Decimal) -> int:
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)
    return -exponent


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.text(min_size=1, max_size=8),
    index=st.integers(0, 999),
    currency=st.sampled_from(sorted(MINOR_UNITS)),
)
def test_every_amount_carries_exactly_its_currency_minor_units(
    seed: str, index: int, currency: str
) -> None:
    shop = make_shop(seed)
    source = shop.seeded.order(index)
    payload = wire(render_order(source, shop, ALL_FIELDS, True))
    payload["currency"] = currency
    order = map_order(payload)
    assert [places(a) for a in amounts_of(order)] == [MINOR_UNITS[currency]] * len(
        amounts_of(order)
    )
    if currency != "VND" and currency != "IDR" and order.raw_status != "UNPAID":
        assert order.total == source.total


def test_float_amounts_are_padded_and_rounded_half_up_to_minor_units() -> None:
    shop = make_shop("money")
    payload = wire(render_order(shop.seeded.order(0), shop, ALL_FIELDS, True))
    payload.update(
        order_status="COMPLETED",
        total_amount=10780.2,
        estimated_shipping_fee=0.0,
        actual_shipping_fee=0.0,
        actual_shipping_fee_confirmed=True,
    )
    payload["item_list"] = [
        {**payload["item_list"][0], "model_original_price": 2.675, "model_discounted_price": 0}
    ]
    order = map_order(payload)
    assert (str(order.total), str(order.shipping_fee)) == ("10780.20", "0.00")
    assert str(order.items[0].unit_price) == "2.68"  # half up, not the float's 2.67499...
    payload.update(currency="VND", total_amount=38000.5, actual_shipping_fee=15000.0)
    order = map_order(payload)
    assert (str(order.total), str(order.shipping_fee), str(order.items[0].unit_price)) == (
        "38001",
        "15000",
        "3",
    )


@settings(max_examples=150, deadline=None)
@given(seed=st.text(min_size=1, max_size=8), index=st.integers(0, 999))
def test_sandbox_address_maps_to_its_structured_parts(seed: str, index: int) -> None:
    shop = make_shop(seed)
    source = shop.seeded.order(index)
    address = map_order(wire(render_order(source, shop, ALL_FIELDS, True))).shipping_address
    assert address is not None
    expected = source.address
    assert (address.line1, address.city, address.state, address.postal_code) == (
        expected.line1,
        expected.district,
        expected.province,
        expected.postal_code,
    )
    assert address.country == expected.country and address.name == expected.name
    assert address.full_address is not None and address.full_address.startswith(expected.line1)


def recipient(full_address: str, **parts: str) -> dict[str, Any]:
    shop = make_shop("address")
    payload = wire(render_order(shop.seeded.order(0), shop, ALL_FIELDS, True))
    empty = {"town": "", "district": "", "city": "", "state": "", "zipcode": "", "region": ""}
    payload["recipient_address"] = {
        "name": "Somchai",
        "phone": "66812345678",
        **empty,
        **parts,
        "full_address": full_address,
    }
    return payload


def test_line1_is_full_address_less_its_trailing_parts() -> None:
    payload = recipient(
        "123/45 ถนนสุขุมวิท, แขวงคลองตัน, เขตคลองเตย, กรุงเทพมหานคร, 10110",
        town="แขวงคลองตัน",
        district="เขตคลองเตย",
        city="กรุงเทพมหานคร",
        state="กรุงเทพมหานคร",
        zipcode="10110",
        region="TH",
    )
    address = map_order(payload).shipping_address
    assert address is not None
    assert address.line1 == "123/45 ถนนสุขุมวิท"
    assert address.line2 == "แขวงคลองตัน"  # the sub-district, beside the district
    assert (address.district, address.city, address.state) == (
        "เขตคลองเตย",
        "กรุงเทพมหานคร",
        "กรุงเทพมหานคร",
    )
    assert (address.postal_code, address.country) == ("10110", "TH")
    assert address.full_address == payload["recipient_address"]["full_address"]


def test_line1_keeps_parts_that_are_not_at_the_end() -> None:
    address = map_order(
        recipient(
            "99 Bangkok Road, Soi 10110, Bang Rak Bangkok 10500",
            district="Bang Rak",
            city="Bangkok",
            zipcode="10500",
        )
    ).shipping_address
    assert address is not None
    assert address.line1 == "99 Bangkok Road, Soi 10110"
    assert (address.district, address.city, address.postal_code) == ("Bang Rak", "Bangkok", "10500")


def test_line1_is_the_whole_full_address_when_no_part_ends_it() -> None:
    full = "1 Fusionopolis Way, #17-10 Connexis North Tower"
    address = map_order(recipient(full, city="Singapore", zipcode="138632")).shipping_address
    assert address is not None
    assert address.line1 == full
    assert (address.city, address.postal_code) == ("Singapore", "138632")
