"""Amounts and addresses as the orders API renders them: every amount with exactly its
currency's minor units (INTERFACE.md "Money and addresses on the wire"), and the structured
address of every platform, read back through the API after the one ingest path."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.orders.schemas import OrderDetailOut, OrderOut
from app.platforms.facebook import mapping as meta_mapping
from app.platforms.lazada import mapping as lazada_mapping
from app.platforms.shopee import mapping as shopee_mapping
from app.platforms.shopee.client import ORDER_DETAIL_FIELDS
from app.platforms.types import NormalizedOrder
from app.sandbox import facebook as meta_sandbox
from app.sandbox import lazada as lazada_sandbox
from app.sandbox import shopee as shopee_sandbox
from app.sandbox.seed import SeededShop, SeedOrder
from tests.conftest import auth_headers
from tests.orders.factories import Item, Order, add_connection, add_orders, ingest_orders

LIST = "/api/marketplace/orders"
USER = "seller-money"
SessionFactory = async_sessionmaker[AsyncSession]

# ISO 4217 minor units as INTERFACE.md pins them; an unknown code gets two.
MINOR_UNITS = {"THB": 2, "MYR": 2, "SGD": 2, "PHP": 2, "USD": 2, "VND": 0, "IDR": 0}
ORDER_AMOUNTS = ("subtotal", "shippingFee", "discount", "total")
ITEM_AMOUNTS = ("unitPrice", "discount")


def minor_units(currency: str) -> int:
    return MINOR_UNITS.get(currency, 2)


def in_minor_units(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-minor_units(currency)), ROUND_HALF_UP)


def places(text: str) -> int:
    whole, _, fraction = text.partition(".")
    assert whole.lstrip("-").isdigit() and (fraction.isdigit() or not fraction), text
    return len(fraction)


def assert_minor_units(order: dict[str, Any]) -> None:
    wanted = minor_units(order["currency"])
    for key in ORDER_AMOUNTS:
        assert places(order[key]) == wanted, (order["currency"], key, order[key])
    for item in order["items"]:
        for key in ITEM_AMOUNTS:
            assert places(item[key]) == wanted, (order["currency"], key, item[key])


async def listed(api: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await api.get(
        LIST, params={"userId": USER, "limit": 200, **params}, headers=auth_headers(USER)
    )
    assert response.status_code == 200, response.text
    orders: list[dict[str, Any]] = response.json()["data"]
    return orders


async def detail(api: httpx.AsyncClient, order_id: int) -> dict[str, Any]:
    response = await api.get(
        f"{LIST}/{order_id}", params={"userId": USER}, headers=auth_headers(USER)
    )
    assert response.status_code == 200, response.text
    order: dict[str, Any] = response.json()["data"]
    return order


def schema_rendering(model: type[OrderOut], order: dict[str, Any]) -> dict[str, Any]:
    """What the pydantic schema itself renders for the same order."""
    rendered: dict[str, Any] = model.model_validate(order).model_dump(mode="json", by_alias=True)
    return rendered


async def test_every_amount_has_exactly_its_currency_minor_units(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    connection = await add_connection(session_factory, USER)
    stored = [
        Order(
            "THB-1",
            currency="THB",
            subtotal=Decimal("10780.2"),
            shipping_fee=Decimal("0.0"),
            discount=Decimal("0"),
            total=Decimal("10780.2"),
            items=[Item(unit_price=Decimal("38.00"), discount=Decimal("0"))],
        ),
        Order(
            "VND-1",
            currency="VND",
            subtotal=Decimal("38000.00"),
            shipping_fee=Decimal("15000"),
            discount=Decimal("0.00"),
            total=Decimal("53000.0"),
            items=[Item(unit_price=Decimal("38000.00"), discount=Decimal("0.00"))],
        ),
        Order(
            "IDR-1", currency="IDR", total=Decimal("125000"), items=[Item(unit_price=Decimal("7"))]
        ),
        Order("USD-1", currency="USD", total=Decimal("7"), items=[Item(unit_price=Decimal("3.5"))]),
        Order("XXX-1", currency="ABC", total=Decimal("1.5"), items=[]),
    ]
    ids = await add_orders(session_factory, connection, stored)
    orders = {o["externalOrderId"]: o for o in await listed(orders_api)}
    assert set(orders) == {o.external_order_id for o in stored}
    thb, vnd = orders["THB-1"], orders["VND-1"]
    assert [thb[k] for k in ORDER_AMOUNTS] == ["10780.20", "0.00", "0.00", "10780.20"]
    assert [thb["items"][0][k] for k in ITEM_AMOUNTS] == ["38.00", "0.00"]
    assert [vnd[k] for k in ORDER_AMOUNTS] == ["38000", "15000", "0", "53000"]
    assert [vnd["items"][0][k] for k in ITEM_AMOUNTS] == ["38000", "0"]
    assert (orders["IDR-1"]["total"], orders["USD-1"]["total"]) == ("125000", "7.00")
    assert orders["XXX-1"]["total"] == "1.50"
    for order, row in zip(stored, ids, strict=True):
        listed_order = orders[order.external_order_id]
        assert_minor_units(listed_order)
        # Exactly the stored value, only written with the currency's digits.
        assert Decimal(listed_order["total"]) == order.total
        one = await detail(orders_api, row)
        assert {k: one[k] for k in ORDER_AMOUNTS} == {k: listed_order[k] for k in ORDER_AMOUNTS}
        assert one["items"] == listed_order["items"]
        # The schema renders amounts the same way as the hand-built body.
        assert schema_rendering(OrderOut, listed_order) == listed_order
        assert schema_rendering(OrderDetailOut, one) == one


async def test_stored_amounts_with_more_digits_round_half_up(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    connection = await add_connection(session_factory, USER)
    await add_orders(
        session_factory,
        connection,
        [
            Order("R-THB", currency="THB", total=Decimal("2.675"), shipping_fee=Decimal("0.005")),
            Order("R-VND", currency="VND", total=Decimal("38000.5"), shipping_fee=Decimal("0.49")),
        ],
    )
    orders = {o["externalOrderId"]: o for o in await listed(orders_api)}
    assert (orders["R-THB"]["total"], orders["R-THB"]["shippingFee"]) == ("2.68", "0.01")
    assert (orders["R-VND"]["total"], orders["R-VND"]["shippingFee"]) == ("38001", "0")


async def test_total_sort_pages_the_same_with_rendered_amounts(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    connection = await add_connection(session_factory, USER)
    totals = [Decimal("0.5"), Decimal("10.05"), Decimal("10.1"), Decimal("7")]
    await add_orders(
        session_factory,
        connection,
        [
            Order(
                f"S{n}", created_at=datetime(2024, 3, 1, tzinfo=UTC) + timedelta(hours=n), total=t
            )
            for n, t in enumerate(totals)
        ],
    )
    seen: list[str] = []
    cursor = None
    for _ in range(len(totals) + 1):
        params: dict[str, Any] = {"userId": USER, "sort": "total", "limit": 1}
        if cursor:
            params["cursor"] = cursor
        response = await orders_api.get(LIST, params=params, headers=auth_headers(USER))
        body = response.json()
        seen.extend(o["total"] for o in body["data"])
        cursor = body["pagination"]["nextCursor"]
        if cursor is None:
            break
    assert seen == [format(in_minor_units(t, "THB"), "f") for t in sorted(totals)]


# --- orders from each platform's payload, through mapper and ingest --------------------------

SHOP = SeededShop(
    seed="money-and-addresses",
    order_count=24,
    start=datetime(2026, 1, 1, tzinfo=UTC),
    end=datetime(2026, 2, 1, tzinfo=UTC),
)
_SHOPEE = shopee_sandbox.ShopeeShop(
    shop_id=1, partner_id=2, partner_key="k", seeded=SHOP, name="shop"
)
_META_PAGE = meta_sandbox.FacebookSandbox().add_page(seed="money-and-addresses")


def wire(value: Any) -> Any:
    return json.loads(json.dumps(value, ensure_ascii=False))


def from_shopee(seed: SeedOrder) -> NormalizedOrder:
    payload = shopee_sandbox.render_order(seed, _SHOPEE, set(ORDER_DETAIL_FIELDS), True)
    return shopee_mapping.map_order(wire(payload))


def from_lazada(seed: SeedOrder) -> NormalizedOrder:
    return lazada_mapping.map_order(
        wire(lazada_sandbox.render_order(seed)), wire(lazada_sandbox.render_items(seed))
    )


def from_meta(seed: SeedOrder) -> NormalizedOrder:
    return meta_mapping.map_order(wire(meta_sandbox.render_order(_META_PAGE, seed)))


MAPPERS: dict[str, Callable[[SeedOrder], NormalizedOrder]] = {
    "shopee": from_shopee,
    "lazada": from_lazada,
    "facebook": from_meta,
}


@pytest.mark.parametrize(
    ("platform", "currency"),
    [
        ("shopee", "THB"),
        ("shopee", "VND"),
        ("lazada", "THB"),
        ("facebook", "THB"),
        ("facebook", "VND"),
    ],
)
async def test_synced_orders_read_back_in_minor_units_with_a_structured_address(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory, platform: str, currency: str
) -> None:
    seeds = {}
    normalized = []
    for index in range(SHOP.order_count):
        seed = SHOP.order(index)
        seed.currency = currency
        order = MAPPERS[platform](seed)
        seeds[order.external_order_id] = seed
        normalized.append(order)
    connection = await add_connection(session_factory, USER, platform)
    await ingest_orders(session_factory, connection, normalized)
    orders = await listed(orders_api, includeBuyer="true")
    assert {o["externalOrderId"] for o in orders} == set(seeds)
    for order in orders:
        seed = seeds[order["externalOrderId"]]
        assert order["currency"] == currency
        assert_minor_units(order)
        if order["rawStatus"] != "UNPAID":  # Shopee has no total before payment
            assert order["total"] == format(in_minor_units(seed.total, currency), "f")
        assert order["shippingFee"] == format(in_minor_units(seed.shipping_fee, currency), "f")
        # Lazada merges lines of one SKU and price, so compare the set of prices.
        assert {i["unitPrice"] for i in order["items"]} == {
            format(in_minor_units(i.unit_price, currency), "f") for i in seed.items
        }
        address = order["shippingAddress"]
        wanted = seed.address
        assert address["line1"] == wanted.line1
        assert address["state"] == wanted.province
        assert address["postalCode"] == wanted.postal_code
        assert wanted.district in (address["district"], address["city"])
        assert address["country"] == wanted.country
        assert address["fullAddress"] and wanted.line1 in address["fullAddress"]
