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
