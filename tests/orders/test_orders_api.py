from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.orders.schemas import (
    AddressOut,
    OrderDetailResponse,
    OrderItemOut,
    OrderListResponse,
    OrderOut,
)
from tests.conftest import auth_headers
from tests.orders.factories import BASE_TIME, Item, Order, add_connection, add_orders, series

LIST = "/api/marketplace/orders"
USER = "seller-1"
OTHER = "seller-2"
SessionFactory = async_sessionmaker[AsyncSession]


def aliases(model: type[Any]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def assert_documented_keys(order: dict[str, Any]) -> None:
    """The body is built without a pydantic pass, so its keys are held to the schema here."""
    assert set(order) == aliases(OrderOut)
    assert all(set(item) == aliases(OrderItemOut) for item in order["items"])
    if order["shippingAddress"] is not None:
        assert set(order["shippingAddress"]) == aliases(AddressOut)


async def get_list(api: httpx.AsyncClient, user: str = USER, **params: Any) -> dict[str, Any]:
    response = await api.get(LIST, params={"userId": user, **params}, headers=auth_headers(user))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    OrderListResponse.model_validate(body)
    for order in body["data"]:
        assert_documented_keys(order)
    assert set(body["pagination"]) == {"total", "limit", "offset", "nextCursor"}
    return body


async def all_pages(api: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """Every order, following nextCursor from the first page."""
    orders: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        extra = {"cursor": cursor} if cursor else {}
        body = await get_list(api, **params, **extra)
        orders.extend(body["data"])
        cursor = body["pagination"]["nextCursor"]
        if cursor is None:
            return orders
    raise AssertionError("the cursor never reached the last page")


def external_ids(orders: list[dict[str, Any]]) -> list[str]:
    return [o["externalOrderId"] for o in orders]


async def assert_422(api: httpx.AsyncClient, parameter: str, **params: Any) -> None:
    response = await api.get(LIST, params={"userId": USER, **params}, headers=auth_headers(USER))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert parameter in [f["field"] for f in error["fields"]], error
    assert parameter in error["message"]


# ------------------------------------------------------------------------------- the shape


async def test_list_returns_the_unified_shape_with_items_and_no_raw(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    connection = await add_connection(session_factory, USER, "lazada")
    paid = BASE_TIME + timedelta(minutes=5)
    [order_id] = await add_orders(
        session_factory,
        connection,
        [
            Order(
                "LZ-1001",
                status="shipped",
                raw_status="shipped_back",
                buyer_name="Malee Wongsa",
                buyer_phone="+66898765432",
                buyer_email="malee@example.com",
                shipping_address={"name": "Malee", "postal_code": "10110", "city": "Bangkok"},
                subtotal=Decimal("1234.50"),
                shipping_fee=Decimal("40.00"),
                discount=Decimal("0.10"),
                total=Decimal("1274.40"),
                payment_method="card",
                is_cod=False,
                paid_at=paid,
                raw={"order_id": "LZ-1001", "secret_field": "payload"},
                items=[
                    Item("Rice cooker", "RC-1", 1, Decimal("1000.00"), Decimal("0.10"), "White"),
                    Item("Mug", None, 3, Decimal("78.17"), external_item_id=None),
                ],
            )
        ],
    )
    body = await get_list(orders_api)
    assert body["pagination"] == {"total": 1, "limit": 50, "offset": 0, "nextCursor": None}
    [order] = body["data"]
    synced_at = order.pop("syncedAt")
    assert datetime.fromisoformat(synced_at).tzinfo is not None
    assert order == {
        "id": order_id,
        "connectionId": str(connection),
        "platformCode": "lazada",
        "externalOrderId": "LZ-1001",
        "status": "shipped",
        "rawStatus": "shipped_back",
        "buyerName": "Malee Wongsa",
        "buyerPhone": "******5432",
        "buyerEmail": "m****@example.com",
        "shippingAddress": {
            "name": "Malee",
            "phone": None,
            "line1": None,
            "line2": None,
            "district": None,
            "city": "Bangkok",
            "state": None,
            "postalCode": "10110",
            "country": None,
            "fullAddress": None,
        },
        "currency": "THB",
        "subtotal": "1234.50",
        "shippingFee": "40.00",
        "discount": "0.10",
        "total": "1274.40",
        "paymentMethod": "card",
        "isCod": False,
        "createdAt": "2024-03-01T12:00:00Z",
        "updatedAt": "2024-03-01T13:00:00Z",
        "paidAt": "2024-03-01T12:05:00Z",
        "buyerErasedAt": None,
        "archivedAt": None,
        "channel": "marketplace",
        "buyerExternalId": None,
        "waitlist": [],
        "waitingOnly": False,
        "fulfillment": None,
        "items": [
            {
                "sku": "RC-1",
                "name": "Rice cooker",
                "variation": "White",
                "quantity": 1,
                "unitPrice": "1000.00",
                "discount": "0.10",
                "externalItemId": "item-1",
                "externalProductId": "product-1",
            },
            {
                "sku": None,
                "name": "Mug",
                "variation": None,
                "quantity": 3,
                "unitPrice": "78.17",
                "discount": "0.00",
                "externalItemId": None,
                "externalProductId": "product-1",
            },
        ],
    }
    assert "raw" not in order


async def test_money_is_the_stored_decimal_in_its_currency_minor_units(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    connection = await add_connection(session_factory, USER)
    amounts = [Decimal("0.10"), Decimal("1234.50"), Decimal("99999999999999.99"), Decimal("7")]
    await add_orders(
        session_factory,
        connection,
        [
            Order(f"M{n}", created_at=BASE_TIME + timedelta(hours=n), total=amount)
            for n, amount in enumerate(amounts)
        ],
    )
    body = await get_list(orders_api, sort="createdAt")
    assert [o["total"] for o in body["data"]] == ["0.10", "1234.50", "99999999999999.99", "7.00"]
    # Exact sums, as a client adding them with a decimal type would get.
    assert sum(Decimal(o["total"]) for o in body["data"]) == sum(amounts)


async def test_orders_of_every_connection_in_one_list(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    for n, platform in enumerate(("shopee", "lazada", "facebook")):
        connection = await add_connection(session_factory, USER, platform)
        await add_orders(
            session_factory,
            connection,
            [Order(f"{platform}-1", created_at=BASE_TIME + timedelta(minutes=n))],
        )
    body = await get_list(orders_api)
    assert [o["platformCode"] for o in body["data"]] == ["facebook", "lazada", "shopee"]
    assert body["pagination"]["total"] == 3


async def test_list_runs_a_fixed_number_of_queries_whatever_the_page_size(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    connection = await add_connection(session_factory, USER)
    orders = series("Q", 60)
    for order in orders:
        order.items = [Item(name=f"item {n}") for n in range(3)]
    await add_orders(session_factory, connection, orders)
    engine = orders_api.app.state.database.engine.sync_engine  # type: ignore[attr-defined]
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
        small = await get_list(orders_api, limit=2)
        small_statements = list(statements)
        statements.clear()
        big = await get_list(orders_api, limit=60)
    finally:
        event.remove(engine, "checkout", on_checkout)
        event.remove(engine, "checkin", on_checkin)
    assert len(small["data"]) == 2 and len(big["data"]) == 60
    assert all(len(o["items"]) == 3 for o in big["data"])
    # One statement for the page, its items and the count, whatever the page size.
    assert len(small_statements) == len(statements) == 1
    assert "marketplace_order_items" in statements[0]


# ------------------------------------------------------------------------------- paging


async def test_offset_pages_cover_every_order_once_newest_first(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    connection = await add_connection(session_factory, USER)
    await add_orders(session_factory, connection, series("O", 25))
    seen: list[str] = []
    for offset in (0, 10, 20):
        body = await get_list(orders_api, limit=10, offset=offset)
        assert body["pagination"]["total"] == 25
        assert body["pagination"]["offset"] == offset
        assert body["pagination"]["limit"] == 10
        seen.extend(external_ids(body["data"]))
    assert seen == [f"O{n:04d}" for n in reversed(range(25))]
    assert body["pagination"]["nextCursor"] is None
    past_the_end = await get_list(orders_api, limit=10, offset=30)
    assert past_the_end["data"] == []
    assert past_the_end["pagination"]["total"] == 25


async def test_cursor_pages_cover_every_order_once_and_end_with_null(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    connection = await add_connection(session_factory, USER)
    await add_orders(session_factory, connection, series("C", 23))
    first = await get_list(orders_api, limit=10)
    assert first["pagination"]["nextCursor"] is not None
    orders = await all_pages(orders_api, limit=10)
    assert external_ids(orders) == [f"C{n:04d}" for n in reversed(range(23))]
    exact = await all_pages(orders_api, limit=23)
    assert len(exact) == 23  # a full last page has no next cursor either


async def test_offset_page_gives_a_cursor_to_continue_with(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    connection = await add_connection(session_factory, USER)
    await add_orders(session_factory, connection, series("S", 12))
    page = await get_list(orders_api, limit=5, offset=5)
    rest = await get_list(orders_api, limit=5, cursor=page["pagination"]["nextCursor"])
    assert external_ids(page["data"]) + external_ids(rest["data"]) == [
        f"S{n:04d}" for n in reversed(range(7))
    ]
    assert rest["pagination"]["nextCursor"] is None


async def test_cursor_is_stable_when_new_orders_arrive(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    connection = await add_connection(session_factory, USER)
    await add_orders(session_factory, connection, series("A", 20))
    first = await get_list(orders_api, limit=8)
    # New orders arrive (newer and at the very same instant as the page's last order).
    last_created = datetime.fromisoformat(first["data"][-1]["createdAt"])
    await add_orders(
        session_factory,
        connection,
        [*series("NEW", 5, start=BASE_TIME + timedelta(days=30)), Order("SAME", last_created)],
    )
    cursor = first["pagination"]["nextCursor"]
    rest: list[dict[str, Any]] = []
    while cursor:
        body = await get_list(orders_api, limit=8, cursor=cursor)
        rest.extend(body["data"])
        cursor = body["pagination"]["nextCursor"]
    combined = external_ids(first["data"]) + external_ids(rest)
    old = [f"A{n:04d}" for n in reversed(range(20))]
    assert [x for x in combined if x.startswith("A")] == old
    assert not any(x.startswith("NEW") for x in combined)
    assert len(combined) == len(set(combined))


async def test_orders_created_at_the_same_instant_page_without_gaps(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    connection = await add_connection(session_factory, USER)
    ids = await add_orders(
        session_factory, connection, [Order(f"T{n:02d}", created_at=BASE_TIME) for n in range(17)]
    )
    orders = await all_pages(orders_api, limit=4)
    assert [o["id"] for o in orders] == sorted(ids, reverse=True)
    oldest_first = await all_pages(orders_api, limit=4, sort="createdAt")
    assert [o["id"] for o in oldest_first] == sorted(ids)


@pytest.mark.parametrize(
    ("sort", "key", "reverse"),
    [
        ("-createdAt", "createdAt", True),
        ("createdAt", "createdAt", False),
        ("-updatedAt", "updatedAt", True),
        ("updatedAt", "updatedAt", False),
        ("-total", "total", True),
        ("total", "total", False),
    ],
)
async def test_every_sort_orders_and_pages_by_its_key(
    orders_api: httpx.AsyncClient,
    session_factory: SessionFactory,
    sort: str,
    key: str,
    reverse: bool,
) -> None:
    connection = await add_connection(session_factory, USER)
    orders = []
    for n in range(15):
        # Creation, update and total orders disagree, so a wrong key shows.
        orders.append(
            Order(
                f"K{n:02d}",
                created_at=BASE_TIME + timedelta(hours=n),
                updated_at=BASE_TIME + timedelta(days=10, hours=(n * 7) % 15),
                total=Decimal((n * 11) % 15) + Decimal("0.50") if n != 3 else Decimal("5.50"),
            )
        )
    ids = await add_orders(session_factory, connection, orders)
    pages = await all_pages(orders_api, limit=4, sort=sort)
    assert sorted(o["id"] for o in pages) == sorted(ids)

    def sort_key(order: dict[str, Any]) -> tuple[Any, int]:
        value = Decimal(order[key]) if key == "total" else datetime.fromisoformat(order[key])
        return value, order["id"]

    assert pages == sorted(pages, key=sort_key, reverse=reverse)
    by_offset: list[dict[str, Any]] = []
    for offset in range(0, 15, 4):
        by_offset.extend((await get_list(orders_api, limit=4, offset=offset, sort=sort))["data"])
    assert by_offset == pages


# ------------------------------------------------------------------------------- filters


async def test_platform_and_connection_filters(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    shopee_a = await add_connection(session_factory, USER, "shopee")
    shopee_b = await add_connection(session_factory, USER, "shopee")
    lazada = await add_connection(session_factory, USER, "lazada")
    await add_orders(session_factory, shopee_a, series("SA", 3))
    await add_orders(session_factory, shopee_b, series("SB", 2))
    await add_orders(session_factory, lazada, series("LZ", 4))

    body = await get_list(orders_api, platformCode="shopee")
    assert body["pagination"]["total"] == 5
    assert {o["platformCode"] for o in body["data"]} == {"shopee"}
    body = await get_list(orders_api, platformCode="lazada")
    assert sorted(external_ids(body["data"])) == [f"LZ{n:04d}" for n in range(4)]
    assert (await get_list(orders_api, platformCode="facebook"))["data"] == []

    body = await get_list(orders_api, connectionId=str(shopee_b))
    assert sorted(external_ids(body["data"])) == ["SB0000", "SB0001"]
    assert body["pagination"]["total"] == 2
    body = await get_list(orders_api, connectionId=str(shopee_b), platformCode="lazada")
    assert body["data"] == [] and body["pagination"]["total"] == 0
    paged = await all_pages(orders_api, connectionId=str(shopee_a), limit=2)
    assert external_ids(paged) == ["SA0002", "SA0001", "SA0000"]


async def test_status_filter_takes_several_values(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    connection = await add_connection(session_factory, USER)
    statuses = ["pending", "shipped", "cancelled", "shipped", "completed", "unpaid"]
    await add_orders(
        session_factory,
        connection,
        [
            Order(f"ST{n}", created_at=BASE_TIME + timedelta(hours=n), status=status)
            for n, status in enumerate(statuses)
        ],
    )
    body = await get_list(orders_api, status="shipped")
    assert external_ids(body["data"]) == ["ST3", "ST1"]
    assert body["pagination"]["total"] == 2
    repeated = await orders_api.get(
        LIST,
        params=[("userId", USER), ("status", "shipped"), ("status", "cancelled")],
        headers=auth_headers(USER),
    )
    assert external_ids(repeated.json()["data"]) == ["ST3", "ST2", "ST1"]
    comma = await get_list(orders_api, status="cancelled, unpaid,COMPLETED")
    assert external_ids(comma["data"]) == ["ST5", "ST4", "ST2"]
    assert comma["pagination"]["total"] == 3


async def test_created_range_is_inclusive_and_naive_times_are_utc(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    connection = await add_connection(session_factory, USER)
    await add_orders(session_factory, connection, series("D", 10))  # 12:00, 13:00, ... UTC
    body = await get_list(
        orders_api, createdFrom="2024-03-01T14:00:00", createdTo="2024-03-01T16:00:00Z"
    )
    assert external_ids(body["data"]) == ["D0004", "D0003", "D0002"]
    assert body["pagination"]["total"] == 3
    # 21:00 in Bangkok is 14:00 UTC.
    bangkok = await get_list(orders_api, createdFrom="2024-03-01T21:00:00+07:00")
    assert external_ids(bangkok["data"])[-1] == "D0002"
    assert bangkok["pagination"]["total"] == 8
    until = await get_list(orders_api, createdTo="2024-03-01T12:30:00Z")
    assert external_ids(until["data"]) == ["D0000"]


async def test_a_date_only_bound_covers_the_whole_day_in_tz(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    connection = await add_connection(session_factory, USER)
    await add_orders(session_factory, connection, series("W", 10))  # 12:00 ... 21:00 UTC
    one_day = await get_list(orders_api, createdFrom="2024-03-01", createdTo="2024-03-01")
    assert one_day["pagination"]["total"] == 10
    assert (await get_list(orders_api, createdTo="2024-03-01"))["pagination"]["total"] == 10
    assert (await get_list(orders_api, createdTo="2024-02-29"))["pagination"]["total"] == 0
    # Bangkok's 1 March ends at 17:00 UTC: 12:00 to 16:00 UTC are its orders.
    bangkok = await get_list(
        orders_api, createdFrom="2024-03-01", createdTo="2024-03-01", tz="Asia/Bangkok"
    )
    assert external_ids(bangkok["data"]) == ["W0004", "W0003", "W0002", "W0001", "W0000"]
    later = await get_list(orders_api, createdFrom="2024-03-02", tz="Asia/Bangkok")
    assert later["pagination"]["total"] == 5
    # A time without an offset is read in tz too; one with an offset keeps it.
    naive = await get_list(orders_api, createdTo="2024-03-01T20:00:00", tz="Asia/Bangkok")
    assert external_ids(naive["data"]) == ["W0001", "W0000"]
    offset = await get_list(orders_api, createdTo="2024-03-01T13:00:00Z", tz="Asia/Bangkok")
    assert external_ids(offset["data"]) == ["W0001", "W0000"]


async def test_search_by_order_id_buyer_name_or_phone(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    connection = await add_connection(session_factory, USER)
    await add_orders(
        session_factory,
        connection,
        [
            Order("240301ABC", buyer_name="Somchai Srisuk", buyer_phone="+66812345678"),
            Order("240301ABD", buyer_name="Malee Wongsa", buyer_phone="+66 89 111 2222"),
            Order("99ABC", buyer_name="Anan 100%_done", buyer_phone=None),
            Order("XYZ", buyer_name=None, buyer_phone="0855550000"),
        ],
    )

    async def found(q: str) -> list[str]:
        body = await get_list(orders_api, q=q)
        assert body["pagination"]["total"] == len(body["data"])
        return sorted(external_ids(body["data"]))

    assert await found("240301ABC") == ["240301ABC"]  # exact id
    assert await found("240301AB") == ["240301ABC", "240301ABD"]  # id prefix
    assert await found("ABC") == []  # not a prefix, not a name
    assert await found("malee") == ["240301ABD"]  # name part, any case
    assert await found("SRISUK") == ["240301ABC"]
    assert await found("100%_") == ["99ABC"]  # wildcards are literal
    assert await found("%") == ["99ABC"]
    assert await found("0812345678") == ["240301ABC"]  # national form of +66 81...
    assert await found("089-111-2222") == ["240301ABD"]  # separators ignored
    assert await found("85555") == ["XYZ"]
    assert await found("  ") == ["240301ABC", "240301ABD", "99ABC", "XYZ"]


# ------------------------------------------------------------------------------- 422s


@pytest.mark.parametrize(
    ("parameter", "params"),
    [
        ("platformCode", {"platformCode": "ebay"}),
        ("connectionId", {"connectionId": "not-a-uuid"}),
        ("status", {"status": "shipped,lost"}),
        ("status", {"status": "nope"}),
        ("createdFrom", {"createdFrom": "yesterday"}),
        ("createdTo", {"createdTo": "2024-13-01"}),
        ("createdTo", {"createdTo": "0001-01-01T00:00:00+05:00"}),
        ("createdFrom", {"createdFrom": "2024-03-02T00:00:00Z", "createdTo": "2024-03-01"}),
        ("createdFrom", {"createdFrom": "2024-03-02", "createdTo": "2024-03-01"}),
        ("createdTo", {"createdTo": "9999-12-31", "tz": "Pacific/Kiritimati"}),
        ("createdFrom", {"createdFrom": "0001-01-01", "tz": "Asia/Bangkok"}),
        ("tz", {"tz": "localtime"}),
        ("tz", {"tz": "Mars/Olympus"}),
        ("tz", {"tz": "UTC+7"}),
        ("sort", {"sort": "name"}),
        ("sort", {"sort": "-id"}),
        ("limit", {"limit": 0}),
        ("limit", {"limit": 201}),
        ("limit", {"limit": "ten"}),
        ("offset", {"offset": -1}),
        ("offset", {"offset": 2**63}),
        ("cursor", {"cursor": "garbage"}),
        ("cursor", {"cursor": "W10"}),  # valid base64 of a wrong structure
        ("q", {"q": "x" * 129}),
        ("q", {"q": "a\x00b"}),
    ],
)
async def test_bad_parameters_are_422_naming_the_parameter(
    orders_api: httpx.AsyncClient, parameter: str, params: dict[str, Any]
) -> None:
    await assert_422(orders_api, parameter, **params)


def forged_cursor(*parts: Any) -> str:
    payload = json.dumps(list(parts), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("sort", "cursor"),
    [
        ("-createdAt", forged_cursor(1, "-createdAt", "0001-01-01T00:00:00+05:00", 5)),
        ("-createdAt", forged_cursor(1, "-createdAt", "2024-03-01T12:00:00", 5)),  # naive
        ("-createdAt", forged_cursor(1, "-createdAt", "2024-03-01T12:00:00Z", 2**63)),
        ("-createdAt", forged_cursor(1, "-createdAt", "2024-03-01T12:00:00Z", "5")),
        ("-createdAt", forged_cursor(2, "-createdAt", "2024-03-01T12:00:00Z", 5)),
        ("-total", forged_cursor(1, "-total", "1E+1000000", 5)),
        ("-total", forged_cursor(1, "-total", "NaN", 5)),
        ("-total", forged_cursor(1, "-total", "12.5", 5, "extra")),
        ("-total", forged_cursor(1, "nonsense", "12.5", 5)),
    ],
)
async def test_forged_cursors_are_422_never_500(
    orders_api: httpx.AsyncClient, sort: str, cursor: str
) -> None:
    await assert_422(orders_api, "cursor", sort=sort, cursor=cursor)


async def test_a_valid_forged_cursor_pages_like_a_real_one(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    connection = await add_connection(session_factory, USER)
    await add_orders(session_factory, connection, series("F", 6))  # totals 100 .. 105
    cursor = forged_cursor(1, "-total", "103", 2**62)
    body = await get_list(orders_api, sort="-total", cursor=cursor)
    assert external_ids(body["data"]) == ["F0003", "F0002", "F0001", "F0000"]


async def test_cursor_of_another_sort_or_with_offset_is_422(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    connection = await add_connection(session_factory, USER)
    await add_orders(session_factory, connection, series("X", 5))
    cursor = (await get_list(orders_api, limit=2))["pagination"]["nextCursor"]
    await assert_422(orders_api, "cursor", cursor=cursor, sort="-total")
    await assert_422(orders_api, "cursor", cursor=cursor, offset=2)
    await assert_422(orders_api, "cursor", cursor=cursor[:-3])
    assert (await get_list(orders_api, cursor=cursor, offset=0, limit=2))["data"]


async def test_limit_bounds_are_accepted(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    connection = await add_connection(session_factory, USER)
    await add_orders(session_factory, connection, series("L", 3))
    assert len((await get_list(orders_api, limit=1))["data"]) == 1
    assert len((await get_list(orders_api, limit=200))["data"]) == 3


async def test_total_can_be_skipped(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    connection = await add_connection(session_factory, USER)
    await add_orders(session_factory, connection, series("N", 3))
    body = await get_list(orders_api, includeTotal="false", limit=2)
    assert body["pagination"]["total"] is None
    assert len(body["data"]) == 2 and body["pagination"]["nextCursor"]


# ------------------------------------------------------------------------------- who sees what


async def test_users_see_only_their_own_orders(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    mine = await add_connection(session_factory, USER, "shopee")
    theirs = await add_connection(session_factory, OTHER, "shopee")
    await add_orders(session_factory, mine, series("MINE", 3))
    await add_orders(session_factory, theirs, series("THEIRS", 4))

    body = await get_list(orders_api)
    assert sorted(external_ids(body["data"])) == ["MINE0000", "MINE0001", "MINE0002"]
    assert body["pagination"]["total"] == 3
    # No userId: the token's subject is the user.
    response = await orders_api.get(LIST, headers=auth_headers(OTHER))
    assert len(response.json()["data"]) == 4
    # Another user's connection id filters to nothing rather than leaking.
    body = await get_list(orders_api, connectionId=str(theirs))
    assert body["data"] == [] and body["pagination"]["total"] == 0
    # Another user's cursor cannot open their orders either: the user filter always applies.
    their_cursor = (await get_list(orders_api, OTHER, limit=1))["pagination"]["nextCursor"]
    body = await get_list(orders_api, cursor=their_cursor)
    assert all(x.startswith("MINE") for x in external_ids(body["data"]))


async def test_list_needs_the_token_of_the_named_user(orders_api: httpx.AsyncClient) -> None:
    response = await orders_api.get(LIST, params={"userId": USER})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    response = await orders_api.get(LIST, params={"userId": USER}, headers=auth_headers(OTHER))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


# ------------------------------------------------------------------------------- detail


async def test_detail_has_items_and_the_raw_payload(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    connection = await add_connection(session_factory, USER, "facebook")
    raw = {"id": "FB-9", "order_status": {"state": "IN_PROGRESS"}, "items": [{"qty": 2}]}
    [order_id] = await add_orders(
        session_factory,
        connection,
        [
            Order(
                "FB-9",
                raw=raw,
                total=Decimal("0.10"),
                items=[
                    Item("Mug", "MUG", 2, Decimal("0.05")),
                    Item("Spoon", "SP", 1, Decimal("0")),
                ],
            )
        ],
    )
    response = await orders_api.get(
        f"{LIST}/{order_id}", params={"userId": USER}, headers=auth_headers(USER)
    )
    assert response.status_code == 200, response.text
    OrderDetailResponse.model_validate(response.json())
    order = response.json()["data"]
    assert_documented_keys({k: v for k, v in order.items() if k != "raw"})
    assert order["id"] == order_id
    assert order["raw"] == raw
    assert order["total"] == "0.10"
    assert [(i["sku"], i["quantity"], i["unitPrice"]) for i in order["items"]] == [
        ("MUG", 2, "0.05"),
        ("SP", 1, "0.00"),
    ]
    assert sum(Decimal(i["unitPrice"]) * i["quantity"] for i in order["items"]) == Decimal("0.10")
    listed = (await get_list(orders_api, includeBuyer="true"))["data"][0]
    assert {k: v for k, v in order.items() if k != "raw"} == listed


async def test_detail_of_another_users_order_is_404_and_bad_ids_422(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    theirs = await add_connection(session_factory, OTHER)
    [order_id] = await add_orders(session_factory, theirs, [Order("SECRET")])
    response = await orders_api.get(f"{LIST}/{order_id}", headers=auth_headers(USER))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert "SECRET" not in response.text
    response = await orders_api.get(
        f"{LIST}/{order_id}", params={"userId": OTHER}, headers=auth_headers(USER)
    )
    assert response.status_code == 403
    response = await orders_api.get(f"{LIST}/{order_id + 1000}", headers=auth_headers(USER))
    assert response.status_code == 404
    for bad in ("abc", "0", "-1", str(2**63), str(uuid.uuid4())):
        response = await orders_api.get(f"{LIST}/{bad}", headers=auth_headers(USER))
        assert response.status_code == 422, bad
        assert [f["field"] for f in response.json()["error"]["fields"]] == ["orderId"]
    response = await orders_api.get(f"{LIST}/{order_id}")
    assert response.status_code == 401


async def test_times_are_utc_whatever_offset_they_were_stored_with(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    connection = await add_connection(session_factory, USER)
    bangkok = datetime(2024, 3, 2, 8, 30, tzinfo=timezone(timedelta(hours=7)))
    await add_orders(session_factory, connection, [Order("TZ", created_at=bangkok)])
    order = (await get_list(orders_api))["data"][0]
    assert order["createdAt"] == "2024-03-02T01:30:00Z"
