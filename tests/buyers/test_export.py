"""GET /api/marketplace/buyers/export: everything stored about one buyer of the user, the phone
matched by its digits whatever the Thai prefix."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.buyers.schemas import BuyerExportResponse
from app.buyers.service import erase_connection_buyer_data
from app.models import MarketplaceOrder
from tests.buyers.conftest import EXPORT
from tests.buyers.payloads import RAW_PAYLOADS, SHOP, normalized
from tests.conftest import auth_headers
from tests.orders.factories import Item, Order, add_connection, add_orders, ingest_orders

USER = "seller-export"
SessionFactory = async_sessionmaker[AsyncSession]


async def export(
    api: httpx.AsyncClient, phone: str | None, user: str = USER, **params: Any
) -> httpx.Response:
    query = {"userId": user, **params}
    if phone is not None:
        query["phone"] = phone
    return await api.get(EXPORT, params=query, headers=auth_headers(user))


async def exported(api: httpx.AsyncClient, phone: str) -> dict[str, Any]:
    response = await export(api, phone)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    BuyerExportResponse.model_validate(body)
    data: dict[str, Any] = body["data"]
    return data


async def somchai_and_others(session_factory: SessionFactory) -> list[int]:
    shopee = await add_connection(session_factory, USER, "shopee")
    lazada = await add_connection(session_factory, USER, "lazada")
    ids = await add_orders(
        session_factory,
        shopee,
        [
            Order(
                "SP-1",
                buyer_phone="+66812345678",
                buyer_email="somchai@example.com",
                shipping_address={"line1": "99/1 Sukhumvit", "phone": "+66812345678"},
                raw={"order_sn": "SP-1", "recipient_address": {"phone": "66812345678"}},
                items=[Item("Rice", quantity=2)],
            ),
            Order("SP-OTHER", buyer_name="Malee", buyer_phone="+66898765432"),
        ],
    )
    ids += await add_orders(
        session_factory, lazada, [Order("LZ-1", buyer_phone="081-234-5678", buyer_email=None)]
    )
    return ids


@pytest.mark.parametrize("phone", ["0812345678", "+66812345678", "+66 81 234 5678", "66812345678"])
async def test_export_finds_the_buyer_by_phone_in_either_format(
    buyers_api: httpx.AsyncClient, session_factory: SessionFactory, phone: str
) -> None:
    await somchai_and_others(session_factory)
    data = await exported(buyers_api, phone)
    assert data["phone"] == phone
    assert [o["externalOrderId"] for o in data["orders"]] == ["SP-1", "LZ-1"]
    assert data["orderCount"] == 2


async def test_export_has_full_buyer_fields_items_and_raw_payloads(
    buyers_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    await somchai_and_others(session_factory)
    first = (await exported(buyers_api, "0812345678"))["orders"][0]
    assert (first["buyerPhone"], first["buyerEmail"]) == ("+66812345678", "somchai@example.com")
    assert first["shippingAddress"]["line1"] == "99/1 Sukhumvit"
    assert first["shippingAddress"]["phone"] == "+66812345678"
    assert first["raw"] == {"order_sn": "SP-1", "recipient_address": {"phone": "66812345678"}}
    assert [(i["name"], i["quantity"]) for i in first["items"]] == [("Rice", 2)]


async def test_export_finds_synced_orders_of_each_platform_with_a_phone(
    buyers_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    seed = SHOP.order(4)
    for platform, render in RAW_PAYLOADS.items():
        connection = await add_connection(session_factory, USER, platform)
        await ingest_orders(session_factory, connection, [normalized(platform, render(seed))])
    # The seeded phone is international without "+" (66...); ask with the national form.
    national = "0" + seed.buyer_phone.removeprefix("66")
    data = await exported(buyers_api, national)
    # Meta shares no phone number, so only Shopee's and Lazada's orders carry it.
    assert sorted(o["platformCode"] for o in data["orders"]) == ["lazada", "shopee"]
    assert all(o["raw"] for o in data["orders"])


async def test_another_users_buyer_is_never_exported(
    buyers_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    theirs = await add_connection(session_factory, "another-seller", "shopee")
    await add_orders(session_factory, theirs, [Order("THEIRS-1", buyer_phone="+66812345678")])
    assert (await exported(buyers_api, "0812345678"))["orders"] == []
    response = await export(buyers_api, "0812345678", userId="another-seller")
    assert response.status_code == 403


async def test_an_erased_buyer_is_no_longer_found(
    buyers_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    shopee_order, *_ = await somchai_and_others(session_factory)
    async with session_factory() as session, session.begin():
        order = await session.get(MarketplaceOrder, shopee_order)
        assert order is not None
        await erase_connection_buyer_data(session, order.connection_id)
    orders = (await exported(buyers_api, "0812345678"))["orders"]
    assert [o["externalOrderId"] for o in orders] == ["LZ-1"]


@pytest.mark.parametrize("phone", [None, "", "12345", "no digits here", "1" * 16])
async def test_a_missing_or_unusable_phone_is_422(
    buyers_api: httpx.AsyncClient, phone: str | None
) -> None:
    response = await export(buyers_api, phone)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert "phone" in [f["field"] for f in error["fields"]], error


async def test_export_needs_a_bearer_token(buyers_api: httpx.AsyncClient) -> None:
    response = await buyers_api.get(EXPORT, params={"userId": USER, "phone": "0812345678"})
    assert response.status_code == 401
