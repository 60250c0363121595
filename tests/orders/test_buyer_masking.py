"""Order lists mask the buyer's contact details (Thailand's PDPA) unless includeBuyer=true;
order detail shows them in full."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.orders.service import mask_email, mask_phone
from tests.buyers.payloads import RAW_PAYLOADS, SHOP, normalized
from tests.conftest import auth_headers
from tests.orders.factories import Order, add_connection, add_orders, ingest_orders

LIST = "/api/marketplace/orders"
USER = "seller-masking"
SessionFactory = async_sessionmaker[AsyncSession]

ADDRESS = {
    "name": "Somchai Srisuk",
    "phone": "+66812345678",
    "line1": "99/1 Sukhumvit Soi 11",
    "line2": "Khlong Toei Nuea",
    "district": "Watthana",
    "city": "Bangkok",
    "state": "Bangkok",
    "postal_code": "10110",
    "country": "TH",
    "full_address": "99/1 Sukhumvit Soi 11, Khlong Toei Nuea, Watthana, Bangkok 10110",
}


async def get(api: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await api.get(path, params={"userId": USER, **params}, headers=auth_headers(USER))
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def one_order(session_factory: SessionFactory) -> int:
    connection = await add_connection(session_factory, USER, "shopee")
    [order_id] = await add_orders(
        session_factory,
        connection,
        [
            Order(
                "SP-MASK-1",
                buyer_name="Somchai Srisuk",
                buyer_phone="+66812345678",
                buyer_email="somchai@example.com",
                shipping_address=ADDRESS,
            )
        ],
    )
    return order_id


async def test_list_masks_phone_email_street_and_address_phone(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    await one_order(session_factory)
    [order] = await get(orders_api, LIST)
    assert (order["buyerPhone"], order["buyerEmail"]) == ("******5678", "s****@example.com")
    assert order["shippingAddress"] == {
        "name": "Somchai Srisuk",
        "phone": "******5678",
        "line1": "****",
        "line2": "****",
        "district": "Watthana",
        "city": "Bangkok",
        "state": "Bangkok",
        "postalCode": "10110",
        "country": "TH",
        "fullAddress": "****",
    }
    assert order["buyerName"] == "Somchai Srisuk"


async def test_include_buyer_lists_them_in_full(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    await one_order(session_factory)
    [order] = await get(orders_api, LIST, includeBuyer="true")
    assert (order["buyerPhone"], order["buyerEmail"]) == ("+66812345678", "somchai@example.com")
    address = order["shippingAddress"]
    assert (address["phone"], address["line1"], address["line2"], address["fullAddress"]) == (
        ADDRESS["phone"],
        ADDRESS["line1"],
        ADDRESS["line2"],
        ADDRESS["full_address"],
    )


async def test_detail_shows_them_in_full(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    order_id = await one_order(session_factory)
    order = await get(orders_api, f"{LIST}/{order_id}")
    assert (order["buyerPhone"], order["buyerEmail"]) == ("+66812345678", "somchai@example.com")
    assert order["shippingAddress"]["line1"] == ADDRESS["line1"]
    assert order["shippingAddress"]["fullAddress"] == ADDRESS["full_address"]
    assert order["buyerErasedAt"] is None


async def test_absent_fields_stay_null_when_masked(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    connection = await add_connection(session_factory, USER, "lazada")
    await add_orders(
        session_factory,
        connection,
        [
            Order("LZ-NO-ADDRESS", buyer_phone=None, shipping_address=None),
            Order("LZ-CITY-ONLY", shipping_address={"city": "Chiang Mai", "postal_code": "50200"}),
        ],
    )
    orders = {o["externalOrderId"]: o for o in await get(orders_api, LIST)}
    bare = orders["LZ-NO-ADDRESS"]
    assert (bare["buyerPhone"], bare["buyerEmail"], bare["shippingAddress"]) == (None, None, None)
    city_only = orders["LZ-CITY-ONLY"]["shippingAddress"]
    assert (city_only["line1"], city_only["phone"], city_only["city"]) == (None, None, "Chiang Mai")


async def test_synced_orders_are_masked_in_lists_for_every_platform(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    for platform, render in RAW_PAYLOADS.items():
        seeds = [SHOP.order(i) for i in range(3)]
        connection = await add_connection(session_factory, USER, platform)
        await ingest_orders(
            session_factory, connection, [normalized(platform, render(s)) for s in seeds]
        )
    listed = await get(orders_api, LIST, limit=100)
    assert len(listed) == 9
    streets = {SHOP.order(i).address.line1 for i in range(3)}
    phones = {SHOP.order(i).buyer_phone for i in range(3)}
    for order in listed:
        address = order["shippingAddress"]
        assert address["line1"] in ("****", None) and address["line1"] not in streets
        assert order["buyerPhone"] is None or order["buyerPhone"].startswith("******")
        assert order["buyerPhone"] not in phones
        assert order["buyerEmail"] is None or "****@" in order["buyerEmail"]
    full = await get(orders_api, LIST, limit=100, includeBuyer="true")
    assert {o["shippingAddress"]["line1"] for o in full} == streets


@contextmanager
def statements_sent(api: httpx.AsyncClient) -> Iterator[list[str]]:
    """The SQL statements the API sends to the orders tables while the block runs."""
    engine = api.app.state.database.engine.sync_engine  # type: ignore[attr-defined]
    statements: list[str] = []

    def log(query: Any) -> None:
        if "marketplace_" in query.query:  # not the driver's own type introspection
            statements.append(query.query)

    def on_checkout(_dbapi: Any, record: Any, _proxy: Any) -> None:
        record.driver_connection.add_query_logger(log)

    def on_checkin(_dbapi: Any, record: Any) -> None:
        if record.driver_connection is not None:
            record.driver_connection.remove_query_logger(log)

    event.listen(engine, "checkout", on_checkout)
    event.listen(engine, "checkin", on_checkin)
    try:
        yield statements
    finally:
        event.remove(engine, "checkout", on_checkout)
        event.remove(engine, "checkin", on_checkin)


@pytest.mark.parametrize("include_buyer", ["false", "true"])
async def test_a_masked_or_full_list_is_still_one_statement(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory, include_buyer: str
) -> None:
    connection = await add_connection(session_factory, USER, "shopee")
    await add_orders(
        session_factory,
        connection,
        [Order(f"SP-{n}", shipping_address=ADDRESS, buyer_email="x@y.th") for n in range(20)],
    )
    with statements_sent(orders_api) as statements:
        listed = await get(orders_api, LIST, includeBuyer=include_buyer)
    assert len(listed) == 20
    assert len(statements) == 1 and "marketplace_order_items" in statements[0]


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("+66812345678", "******5678"),
        ("081-234-5678", "******5678"),
        ("1234", "******"),
        ("", "******"),
        (None, None),
    ],
)
def test_phone_mask_shows_the_last_four_digits_only(phone: str | None, masked: str | None) -> None:
    assert mask_phone(phone) == masked


@pytest.mark.parametrize(
    ("email", "masked"),
    [
        ("somchai@example.com", "s****@example.com"),
        ("a@b.co", "a****@b.co"),
        ("not-an-email", "****"),
        ("@example.com", "****"),
        (None, None),
    ],
)
def test_email_mask_keeps_the_first_letter_and_the_domain(
    email: str | None, masked: str | None
) -> None:
    assert mask_email(email) == masked
