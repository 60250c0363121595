"""One buyer across channels is one customer: linked by phone (any Thai prefix), e-mail (any
case) and the platform's buyer id, transitively; masked, searchable, paged; erasure and export
of their data through the customer."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.customers.service import rebuild, refresh_behind, refresh_connection
from tests.conftest import auth_headers
from tests.orders.factories import BASE_TIME, Order, add_connection, add_orders

USER = "seller-customers"
LIST = "/api/marketplace/customers"
SessionFactory = async_sessionmaker[AsyncSession]


async def get(api: httpx.AsyncClient, path: str, user: str = USER, **params: Any) -> Any:
    response = await api.get(path, params={"userId": user, **params}, headers=auth_headers(user))
    assert response.status_code == 200, response.text
    return response.json()


async def social(
    session_factory: SessionFactory, order_id: int, channel: str, buyer_id: str
) -> None:
    """Make an inserted Facebook order a live or Messenger one, as app/live writes them."""
    async with session_factory() as session, session.begin():
        await session.execute(
            text(
                "UPDATE marketplace_orders SET channel = :channel, buyer_external_id = :buyer "
                "WHERE id = :id"
            ),
            {"channel": channel, "buyer": buyer_id, "id": order_id},
        )


async def one_buyer_on_three_channels(session_factory: SessionFactory) -> dict[str, Any]:
    shopee = await add_connection(session_factory, USER, "shopee")
    lazada = await add_connection(session_factory, USER, "lazada")
    facebook = await add_connection(session_factory, USER, "facebook")
    shopee_ids = await add_orders(
        session_factory,
        shopee,
        [
            Order(
                "SP-1", buyer_name="Somchai S.", buyer_phone="+66812345678", total=Decimal("100.50")
            ),
            Order(
                "SP-2",
                created_at=BASE_TIME + timedelta(days=1),
                buyer_phone="+66812345678",
                status="cancelled",
                total=Decimal("999.00"),
            ),
            # Someone else.
            Order("SP-3", buyer_name="Malee K.", buyer_phone="+66899990000", total=Decimal("50")),
        ],
    )
    lazada_ids = await add_orders(
        session_factory,
        lazada,
        [
            Order(
                "LZ-1",
                created_at=BASE_TIME + timedelta(days=2),
                buyer_name="Somchai Srisuk",
                buyer_phone="0812345678",
                buyer_email="Somchai@Example.com",
                total=Decimal("200.25"),
            )
        ],
    )
    facebook_ids = await add_orders(
        session_factory,
        facebook,
        [
            Order(
                "FB-M-1",
                created_at=BASE_TIME + timedelta(days=3),
                buyer_name="Somchai",
                buyer_phone=None,
                buyer_email="somchai@example.com",
                currency="USD",
                total=Decimal("12.5"),
            ),
            Order(
                "FB-L-1",
                created_at=BASE_TIME + timedelta(days=4),
                buyer_name="Somchai FB",
                buyer_phone=None,
                total=Decimal("30"),
            ),
        ],
    )
    await social(session_factory, facebook_ids[0], "messenger", "psid-77")
    # A live order with no contact at all: only the buyer's Page-scoped id links it.
    await social(session_factory, facebook_ids[1], "live", "psid-77")
    return {
        "connections": (shopee, lazada, facebook),
        "somchai": [*shopee_ids[:2], *lazada_ids, *facebook_ids],
        "malee": shopee_ids[2],
    }


async def test_one_buyer_on_three_channels_is_one_customer(
    customers_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    await one_buyer_on_three_channels(session_factory)
    assert await refresh_behind(session_factory) == 6

    rows = (await get(customers_api, LIST))["data"]
    assert len(rows) == 2
    somchai, malee = rows  # the most recent buyer first
    assert somchai["channels"] == ["facebook", "lazada", "shopee"]
    assert somchai["orderCount"] == 5
    # The cancelled order counts as an order, not as money spent; each currency on its own.
    assert somchai["totalSpent"] == {"THB": "330.75", "USD": "12.50"}
    assert somchai["name"] == "Somchai FB"  # from the newest order
    assert somchai["firstOrderAt"] == "2024-03-01T12:00:00Z"
    assert somchai["lastOrderAt"] == "2024-03-05T12:00:00Z"
    assert malee["orderCount"] == 1 and malee["totalSpent"] == {"THB": "50.00"}
    assert malee["channels"] == ["shopee"]


async def test_refresh_is_incremental_and_rebuild_gives_the_same(
    customers_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    setup = await one_buyer_on_three_channels(session_factory)
    await refresh_behind(session_factory)
    before = (await get(customers_api, LIST))["data"]
    # Nothing changed: a second run links nothing again.
    assert await refresh_connection(session_factory, setup["connections"][0]) == 0
    assert await refresh_behind(session_factory) == 0
    assert await rebuild(session_factory, USER) == 6
    after = (await get(customers_api, LIST))["data"]
    assert [{**r, "id": 0} for r in after] == [{**r, "id": 0} for r in before]


async def test_an_order_linking_two_customers_merges_them(
    customers_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    shopee = await add_connection(session_factory, USER, "shopee")
    lazada = await add_connection(session_factory, USER, "lazada")
    await add_orders(session_factory, shopee, [Order("SP-A", buyer_phone="+66811111111")])
    await add_orders(
        session_factory,
        lazada,
        [Order("LZ-B", buyer_phone=None, buyer_email="nok@example.com", total=Decimal("5"))],
    )
    await refresh_behind(session_factory)
    first = (await get(customers_api, LIST))["data"]
    assert len(first) == 2
    survivor = min(row["id"] for row in first)

    await add_orders(
        session_factory,
        lazada,
        [
            Order(
                "LZ-C",
                created_at=BASE_TIME + timedelta(days=1),
                buyer_phone="0811111111",
                buyer_email="NOK@example.com",
                total=Decimal("1"),
            )
        ],
    )
    assert await refresh_behind(session_factory) == 1
    merged = (await get(customers_api, LIST))["data"]
    assert [row["id"] for row in merged] == [survivor]
    assert merged[0]["orderCount"] == 3
    assert merged[0]["totalSpent"] == {"THB": "106.00"}
    assert merged[0]["channels"] == ["lazada", "shopee"]
    async with session_factory() as session:
        owners = (
            await session.execute(text("SELECT DISTINCT customer_id FROM customer_keys"))
        ).all()
    assert owners == [(survivor,)]


async def test_list_masks_contact_details_unless_asked(
    customers_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    await one_buyer_on_three_channels(session_factory)
    await refresh_behind(session_factory)
    somchai = (await get(customers_api, LIST))["data"][0]
    assert somchai["phone"] == "******5678"
    assert somchai["email"] == "s****@example.com"
    full = (await get(customers_api, LIST, includeBuyer="true"))["data"][0]
    assert full["phone"] == "0812345678"  # the newest order that has a phone
    assert full["email"] == "somchai@example.com"


async def test_search_by_name_phone_or_email(
    customers_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    await one_buyer_on_three_channels(session_factory)
    await refresh_behind(session_factory)

    async def names(q: str) -> list[str]:
        return [row["name"] for row in (await get(customers_api, LIST, q=q))["data"]]

    assert await names("srisuk") == ["Somchai FB"]  # a name of any of their orders
    assert await names("+66 81 234 5678") == ["Somchai FB"]
    assert await names("0812345678") == ["Somchai FB"]
    assert await names("EXAMPLE.COM") == ["Somchai FB"]
    assert await names("9999") == ["Malee K."]
    assert await names("nobody") == []


async def test_keyset_paging(
    customers_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    shopee = await add_connection(session_factory, USER, "shopee")
    await add_orders(
        session_factory,
        shopee,
        [
            Order(
                f"SP-{n}", created_at=BASE_TIME + timedelta(hours=n), buyer_phone=f"+6681000000{n}"
            )
            for n in range(5)
        ],
    )
    await refresh_behind(session_factory)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = await get(customers_api, LIST, **params)
        seen.extend(row["lastOrderAt"] for row in body["data"])
        pages += 1
        cursor = body["pagination"]["nextCursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [f"2024-03-01T{12 + n}:00:00Z" for n in range(4, -1, -1)]
    bad = await customers_api.get(
        LIST, params={"userId": USER, "cursor": "nope"}, headers=auth_headers(USER)
    )
    assert bad.status_code == 422 and "cursor" in bad.text


async def test_detail_lists_their_orders_masked(
    customers_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    await one_buyer_on_three_channels(session_factory)
    await refresh_behind(session_factory)
    somchai = (await get(customers_api, LIST))["data"][0]
    detail = (await get(customers_api, f"{LIST}/{somchai['id']}"))["data"]
    assert detail["orderCount"] == 5
    assert [o["externalOrderId"] for o in detail["orders"]] == [
        "FB-L-1",
        "FB-M-1",
        "LZ-1",
        "SP-2",
        "SP-1",
    ]
    lazada = detail["orders"][2]
    assert lazada["buyerPhone"] == "******5678" and lazada["buyerEmail"] == "S****@Example.com"
    assert lazada["total"] == "200.25" and lazada["items"][0]["unitPrice"] == "100.00"
    assert detail["orders"][0]["channel"] == "live"
    # Another seller's token does not reach it.
    other = await customers_api.get(
        f"{LIST}/{somchai['id']}",
        params={"userId": "someone-else"},
        headers=auth_headers("someone-else"),
    )
    assert other.status_code == 404


async def test_export_and_erasure_through_the_customer(
    customers_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    setup = await one_buyer_on_three_channels(session_factory)
    await refresh_behind(session_factory)
    somchai = (await get(customers_api, LIST))["data"][0]
    path = f"{LIST}/{somchai['id']}"

    export = (await get(customers_api, f"{path}/export"))["data"]
    assert export["customer"]["phone"] == "0812345678"
    assert export["orderCount"] == 5
    assert {o["id"] for o in export["orders"]} == set(setup["somchai"])
    lazada = next(o for o in export["orders"] if o["externalOrderId"] == "LZ-1")
    assert lazada["buyerEmail"] == "Somchai@Example.com"  # in full
    assert lazada["raw"] == {"order_sn": "LZ-1"}

    response = await customers_api.delete(
        f"{path}/buyer-data", params={"userId": USER}, headers=auth_headers(USER)
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"customerId": somchai["id"], "erasedOrders": 5}
    async with session_factory() as session:
        left = (
            await session.execute(
                text(
                    "SELECT count(*) FROM marketplace_orders WHERE id = ANY(:ids) AND "
                    "(buyer_name IS NOT NULL OR buyer_phone IS NOT NULL OR buyer_email "
                    "IS NOT NULL OR buyer_erased_at IS NULL)"
                ),
                {"ids": setup["somchai"]},
            )
        ).scalar_one()
    assert left == 0
    gone = await customers_api.get(path, params={"userId": USER}, headers=auth_headers(USER))
    assert gone.status_code == 404
    # The erased orders (their Messenger id stays) never link a customer again.
    await refresh_behind(session_factory)
    rows = (await get(customers_api, LIST))["data"]
    assert [row["name"] for row in rows] == ["Malee K."]
    # The other buyer's order kept its data.
    async with session_factory() as session:
        kept = await session.scalar(
            text("SELECT buyer_phone FROM marketplace_orders WHERE id = :id"),
            {"id": setup["malee"]},
        )
    assert kept == "+66899990000"


async def test_unknown_customer_is_404(customers_api: httpx.AsyncClient) -> None:
    for method, path in (
        ("GET", f"{LIST}/12345"),
        ("GET", f"{LIST}/12345/export"),
        ("DELETE", f"{LIST}/12345/buyer-data"),
    ):
        response = await customers_api.request(
            method, path, params={"userId": USER}, headers=auth_headers(USER)
        )
        assert response.status_code == 404, (method, path, response.text)


async def test_ingest_asks_for_a_refresh(session_factory: SessionFactory, clean: None) -> None:
    from sqlalchemy import text

    from app.orders.ingest import upsert_orders
    from tests.buyers.payloads import RAW_PAYLOADS, SHOP, normalized

    connection_id = await add_connection(session_factory, USER, "shopee")
    async with session_factory() as session, session.begin():
        await upsert_orders(
            session,
            [normalized("shopee", RAW_PAYLOADS["shopee"](SHOP.order(0)))],
            connection_id=connection_id,
            user_id=USER,
            platform_code="shopee",
        )
    async with session_factory() as session:
        rows = (
            await session.execute(
                text("SELECT args, dedupe_key FROM job_outbox WHERE function = 'refresh_customers'")
            )
        ).all()
    assert [(list(row.args), row.dedupe_key) for row in rows] == [
        ([str(connection_id)], f"refresh_customers:{connection_id}")
    ]
