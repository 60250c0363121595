"""Lazada payloads to normalized orders and products: status table, unit grouping, money."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.platforms.lazada.mapping import (
    STATUS_MAP,
    LazadaMappingError,
    map_order,
    map_product,
    order_status,
    parse_time,
)
from app.platforms.types import OrderStatus
from app.sandbox.lazada import (
    STATUS_VARIANTS,
    render_items,
    render_order,
    render_product,
    unit_statuses,
)
from app.sandbox.seed import STATUSES, SeedAddress, SeededShop, SeedItem, SeedOrder

# The normalized status each neutral seed status must come back as through the sandbox.
EXPECTED = {
    "unpaid": OrderStatus.UNPAID,
    "pending": OrderStatus.PENDING,
    "ready_to_ship": OrderStatus.READY_TO_SHIP,
    "shipped": OrderStatus.SHIPPED,
    "delivered": OrderStatus.DELIVERED,
    "completed": OrderStatus.COMPLETED,
    "cancelling": OrderStatus.PENDING,  # Lazada has no "cancelling"; the rest still waits
    "cancelled": OrderStatus.CANCELLED,
    "returned": OrderStatus.RETURNED,
    "failed": OrderStatus.FAILED,
}

REFERENCE_STATUSES = [
    *("unpaid", "pending", "ready_to_ship", "shipped", "delivered", "canceled", "returned"),
    *("failed", "packed", "topack", "toship", "shipping", "lost_by_3pl", "damaged_by_3pl"),
]


def wire(value: Any) -> Any:
    """What the client sees: the sandbox's JSON, decoded the way httpx decodes it."""
    return json.loads(json.dumps(value, ensure_ascii=False))


def test_every_status_of_the_reference_and_the_sandbox_is_mapped() -> None:
    for raw in REFERENCE_STATUSES:
        assert raw in STATUS_MAP, raw
    rendered = {raw for raws in STATUS_VARIANTS.values() for raw in raws} | {"canceled"}
    assert all(
        STATUS_MAP.get(raw, OrderStatus.UNKNOWN) is not OrderStatus.UNKNOWN for raw in rendered
    )
    assert set(STATUS_VARIANTS) == set(STATUSES)


@pytest.mark.parametrize(
    ("units", "expected", "raw"),
    [
        (["delivered", "returned"], OrderStatus.DELIVERED, "delivered"),
        (["canceled", "pending", "pending"], OrderStatus.PENDING, "pending"),
        (["canceled", "canceled"], OrderStatus.CANCELLED, "canceled"),
        (["shipped", "delivered"], OrderStatus.SHIPPED, "shipped"),
        (["delivered", "lost_by_3pl"], OrderStatus.FAILED, "lost_by_3pl"),
        (["packed", "ready_to_ship"], OrderStatus.READY_TO_SHIP, "packed"),
        (["confirmed", "returned"], OrderStatus.COMPLETED, "confirmed"),
        (["something_new"], OrderStatus.UNKNOWN, "something_new"),
        (["something_new", "shipped"], OrderStatus.SHIPPED, "shipped"),
        ([], OrderStatus.UNKNOWN, ""),
    ],
)
def test_one_status_per_order_from_its_units(
    units: list[str], expected: OrderStatus, raw: str
) -> None:
    assert order_status(units) == (expected, raw)


@pytest.mark.parametrize(
    "value",
    [
        "2024-01-05 14:22:01 +0700",
        "2024-01-05T07:22:01Z",
        "2024-01-05T14:22:01+07:00",
        1704439321000,
        "1704439321",
        "2024-01-05 14:22:01",
    ],
)
def test_times_in_every_lazada_shape_become_utc(value: Any) -> None:
    assert parse_time(value) == datetime(2024, 1, 5, 7, 22, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("order", "rows"),
    [
        ({"price": "1.00", "created_at": "2024-01-05 14:22:01 +0700"}, []),
        ({"order_id": 1, "price": "abc", "created_at": "2024-01-05 14:22:01 +0700"}, []),
        ({"order_id": 1, "price": "1", "created_at": "yesterday", "updated_at": "x"}, []),
        ({"order_id": 1, "price": "1", "created_at": None}, [{"item_price": "NaN"}]),
    ],
)
def test_unreadable_orders_raise_a_mapping_error(order: dict[str, Any], rows: list[Any]) -> None:
    with pytest.raises(LazadaMappingError):
        map_order(order, rows)


def test_seeded_shop_renders_and_maps_exactly() -> None:
    shop = SeededShop(seed="map", order_count=400)
    seen_raw: set[str] = set()
    for index in range(shop.order_count):
        seed = shop.order(index)
        order = map_order(wire(render_order(seed)), wire(render_items(seed)))
        assert_matches_seed(order, seed)
        seen_raw |= set(unit_statuses(seed))
    assert {STATUS_MAP[raw] for raw in seen_raw} == set(EXPECTED.values())


def assert_matches_seed(order: Any, seed: SeedOrder) -> None:
    assert order.external_order_id == str(seed.order_id)
    assert order.status is EXPECTED[seed.status]
    assert order.subtotal == seed.subtotal
    assert order.shipping_fee == seed.shipping_fee
    assert order.discount == seed.voucher
    assert order.total == seed.total
    assert order.created_at == seed.created_at and order.updated_at == seed.updated_at
    wanted: Counter[str] = Counter()
    for item in seed.items:
        wanted[item.sku] += item.quantity
    got: Counter[str] = Counter()
    for item in order.items:
        got[item.sku] += item.quantity
    assert got == wanted
    assert sum((i.discount for i in order.items), Decimal(0)) == sum(
        (i.discount for i in seed.items), Decimal(0)
    )
    assert order.is_cod == seed.is_cod
    assert order.currency == "THB"


cents = st.integers(min_value=0, max_value=99_999_999).map(lambda c: Decimal(c) / 100)


@st.composite
def seed_items(draw: st.DrawFn, order_id: int) -> list[SeedItem]:
    items = []
    for line in range(draw(st.integers(1, 4))):
        quantity = draw(st.integers(1, 6))
        price = draw(cents.filter(lambda d: d > 0))
        discount = draw(st.integers(0, int(price * quantity * 100)).map(lambda c: Decimal(c) / 100))
        sku = draw(st.sampled_from(["SKU-0001-1", "SKU-0002-1", "SKU-0003-2", "เสื้อ-ขาว-M"]))
        items.append(
            SeedItem(
                line_id=order_id * 10 + line,
                product_id=100_000 + line,
                variation_id=1_000_000 + line,
                sku=sku,
                name=draw(st.text(min_size=1, max_size=20)),
                variation=draw(st.text(max_size=10)),
                quantity=quantity,
                unit_price=price,
                discount=discount,
            )
        )
    return items


@st.composite
def seed_orders(draw: st.DrawFn) -> SeedOrder:
    index = draw(st.integers(0, 10_000))
    order_id = 2_400_000_000 + index * 7 + 3
    created = draw(
        st.datetimes(min_value=datetime(2015, 1, 1), max_value=datetime(2035, 1, 1))
    ).replace(microsecond=0, tzinfo=UTC)
    updated = created + timedelta(seconds=draw(st.integers(0, 90 * 86400)))
    payment = draw(st.sampled_from(["COD", "CREDIT_CARD", "PROMPTPAY"]))
    return SeedOrder(
        index=index,
        order_id=order_id,
        status=draw(st.sampled_from(STATUSES)),
        created_at=created,
        updated_at=updated,
        paid_at=None,
        buyer_first_name=draw(st.text(max_size=12)),
        buyer_last_name=draw(st.text(max_size=12)),
        buyer_phone="66812345678",
        buyer_email="b@example.co.th",
        address=SeedAddress(
            "n", "66812345678", "1/2 ถนนสุขุมวิท", "เขตบางรัก", "กรุงเทพมหานคร", "10500"
        ),
        items=draw(seed_items(order_id)),
        shipping_fee=draw(cents),
        voucher=draw(cents),
        payment_method=payment,
        is_cod=payment == "COD",
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed_orders())
def test_mapper_never_crashes_and_keeps_every_cent(seed: SeedOrder) -> None:
    order = map_order(wire(render_order(seed)), wire(render_items(seed)))
    assert_matches_seed(order, seed)


junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(seed_orders(), st.data())
def test_damaged_payloads_fail_only_with_a_mapping_error(
    seed: SeedOrder, data: st.DataObject
) -> None:
    order = wire(render_order(seed))
    rows = wire(render_items(seed))
    target = data.draw(st.sampled_from([order, *rows]))
    target[data.draw(st.sampled_from(sorted(target)))] = data.draw(junk)
    with contextlib.suppress(LazadaMappingError):
        map_order(order, rows)


def test_products_map_with_every_sku_as_a_variation() -> None:
    shop = SeededShop(seed="products", product_count=12)
    for seed in shop.products:
        product = map_product(wire(render_product(seed)))
        assert product.external_product_id == str(seed.product_id)
        assert product.name == seed.name
        assert [(v.sku, v.price, v.stock, v.name) for v in product.variations] == [
            (v.sku, v.price, v.stock, v.name) for v in seed.variations
        ]
        assert product.updated_at == seed.updated_at


# --- money in minor units, structured address ------------------------------------------------

MINOR_UNITS = {"THB": 2, "MYR": 2, "SGD": 2, "PHP": 2, "USD": 2, "VND": 0, "IDR": 0, "ABC": 2}


def amounts_of(order: Any) -> list[Decimal]:
    items = [amount for i in order.items for amount in (i.unit_price, i.discount)]
    return [order.subtotal, order.shipping_fee, order.discount, order.total, *items]


def places(amount: Decimal) -> int:
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)
    return -exponent


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed_orders(), st.sampled_from(sorted(MINOR_UNITS)))
def test_every_amount_carries_exactly_its_currency_minor_units(
    seed: SeedOrder, currency: str
) -> None:
    seed.currency = currency
    order = map_order(wire(render_order(seed)), wire(render_items(seed)))
    assert order.currency == currency
    amounts = amounts_of(order)
    assert [places(a) for a in amounts] == [MINOR_UNITS[currency]] * len(amounts)
    if MINOR_UNITS[currency] == 2:
        assert_matches_seed_amounts(order, seed)


def assert_matches_seed_amounts(order: Any, seed: SeedOrder) -> None:
    assert (order.subtotal, order.shipping_fee, order.total) == (
        seed.subtotal,
        seed.shipping_fee,
        seed.total,
    )


def test_text_and_float_amounts_are_padded_and_rounded_half_up() -> None:
    order = map_order(
        {
            "order_id": 1,
            "created_at": "2024-01-05 14:22:01 +0700",
            "updated_at": "2024-01-05 14:22:01 +0700",
            "statuses": ["pending"],
            "price": "1,299.5",
            "shipping_fee": 40,
            "voucher": 0.0,
        },
        [],
    )
    assert [str(a) for a in (order.subtotal, order.shipping_fee, order.discount)] == [
        "1299.50",
        "40.00",
        "0.00",
    ]
    assert str(order.total) == "1339.50"
    row = {
        "order_item_id": 11,
        "sku": "SKU-1",
        "name": "Tea",
        "item_price": 38000.5,
        "voucher_amount": 0.0,
        "currency": "VND",
        "status": "pending",
    }
    order = map_order(
        {
            "order_id": 2,
            "created_at": "2024-01-05 14:22:01 +0700",
            "updated_at": "2024-01-05 14:22:01 +0700",
            "price": "38,000.50",
            "shipping_fee": 15000.0,
            "voucher": 0,
        },
        [row],
    )
    assert [str(a) for a in (order.items[0].unit_price, order.total, order.shipping_fee)] == [
        "38001",
        "53001",
        "15000",
    ]


def test_sandbox_address_maps_to_its_structured_parts() -> None:
    shop = SeededShop(seed="address", order_count=50)
    for index in range(shop.order_count):
        seed = shop.order(index)
        address = map_order(wire(render_order(seed)), wire(render_items(seed))).shipping_address
        assert address is not None
        wanted = seed.address
        assert (address.line1, address.district, address.state, address.postal_code) == (
            wanted.line1,
            wanted.district,
            wanted.province,
            wanted.postal_code,
        )
        # One country form on every platform: the ISO code, as Shopee and Meta send it.
        assert address.country == wanted.country == "TH"
        assert address.full_address is not None and wanted.line1 in address.full_address
