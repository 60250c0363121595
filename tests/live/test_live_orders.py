from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.inventory.recompute import recompute_counters
from app.live.service import allocate_session
from tests.conftest import RunningSandbox, connection_body, create_sandbox_shop
from tests.live.helpers import (
    BASE_TIME,
    HEADERS,
    USER,
    comment_id_of,
    comments,
    deliver,
    facebook_shop,
    feed_event,
    live_orders,
    open_live,
    order,
    set_stock,
    stock,
)

SKU_A, SKU_B = "LIVE-SHIRT", "LIVE-BAG"


@pytest.fixture
async def shop(
    api: httpx.AsyncClient, sandbox: RunningSandbox
) -> tuple[dict[str, Any], dict[str, str]]:
    connection, credentials = await facebook_shop(api, sandbox)
    await set_stock(api, SKU_A, 5)
    await set_stock(api, SKU_B, 5)
    return connection, credentials


async def _live(api: httpx.AsyncClient, connection: dict[str, Any], **caps: Any) -> dict[str, Any]:
    return await open_live(
        api,
        connection,
        [
            {"code": "A12", "sku": SKU_A, "price": "199.00", "quantity": caps.get("a")},
            {"code": "B3", "sku": SKU_B, "price": "350", "quantity": caps.get("b")},
        ],
    )


async def _say(
    session_factory: async_sessionmaker[AsyncSession],
    connection: dict[str, Any],
    live: dict[str, Any],
    message: str,
    **kwargs: Any,
) -> dict[str, Any]:
    event = feed_event(connection["shopId"], live["postId"], message, **kwargs)
    assert await deliver(session_factory, connection, event) == "processed"
    return event


async def _order_of(
    api: httpx.AsyncClient, live: dict[str, Any], comment_id: str
) -> dict[str, Any]:
    row = next(c for c in await comments(api, live) if c["commentId"] == comment_id)
    assert row["orderId"] is not None, row
    return await order(api, row["orderId"])


async def _no_drift(session_factory: async_sessionmaker[AsyncSession]) -> None:
    # The nightly recompute derives the counters from the ledger and the reservation rows:
    # live lines moved both the same way, so nothing is corrected.
    assert await recompute_counters(session_factory) == []


async def test_a_cf_comment_is_an_unpaid_live_order_holding_stock(
    api: httpx.AsyncClient, shop: Any, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    connection, _ = shop
    live = await _live(api, connection)
    assert live["status"] == "open" and live["keyword"] == "CF"
    event = await _say(
        session_factory, connection, live, "cf a12 x2", buyer="u-1", name="สมหญิง ใจดี"
    )
    body = await _order_of(api, live, comment_id_of(event))
    assert body["platformCode"] == "facebook"
    assert body["channel"] == "live"
    assert body["status"] == "unpaid"
    assert body["buyerName"] == "สมหญิง ใจดี"
    assert body["buyerExternalId"] == "u-1"
    assert [(i["sku"], i["quantity"], i["unitPrice"]) for i in body["items"]] == [
        (SKU_A, 2, "199.00")
    ]
    assert body["waitlist"] == []
    assert body["total"] == "398.00"
    figures = await stock(api, SKU_A)
    assert (figures["available"], figures["reserved"]) == (3, 2)
    await _no_drift(session_factory)


async def test_lines_accumulate_on_one_open_order_per_buyer(
    api: httpx.AsyncClient, shop: Any, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    connection, _ = shop
    live = await _live(api, connection)
    first = await _say(session_factory, connection, live, "CF A12", buyer="u-1")
    await _say(session_factory, connection, live, "CF B3 2", buyer="u-1", at=BASE_TIME + 5)
    await _say(session_factory, connection, live, "CFA12", buyer="u-2", at=BASE_TIME + 6)
    body = await _order_of(api, live, comment_id_of(first))
    assert sorted((i["sku"], i["quantity"]) for i in body["items"]) == [(SKU_B, 2), (SKU_A, 1)]
    assert body["total"] == "899.00"
    assert [row.buyer_external_id for row in await live_orders(session_factory)] == [
        "u-1",
        "u-2",
    ]


async def test_comments_that_are_not_orders_are_kept_and_shown(
    api: httpx.AsyncClient, shop: Any, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    connection, _ = shop
    live = await _live(api, connection)
    for n, message in enumerate(["สวัสดีค่ะ", "CF Z9", "ราคาเท่าไหร่คะ"]):
        await _say(session_factory, connection, live, message, at=BASE_TIME + n)
    rows = await comments(api, live)
    assert [(r["message"], r["outcome"], r["orderId"]) for r in rows] == [
        ("สวัสดีค่ะ", "not_an_order", None),
        ("CF Z9", "not_an_order", None),
        ("ราคาเท่าไหร่คะ", "not_an_order", None),
    ]
    assert await live_orders(session_factory) == []


async def test_the_last_unit_goes_to_the_earlier_comment_even_when_it_arrives_later(
    api: httpx.AsyncClient, shop: Any, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    connection, _ = shop
    await set_stock(api, SKU_A, 1)
    live = await _live(api, connection)
    later = await _say(session_factory, connection, live, "CF A12", buyer="late", at=BASE_TIME + 2)
    earlier = await _say(
        session_factory, connection, live, "CF A12", buyer="early", at=BASE_TIME + 1
    )
    winner = await _order_of(api, live, comment_id_of(earlier))
    loser = await _order_of(api, live, comment_id_of(later))
    assert [i["quantity"] for i in winner["items"]] == [1]
    assert loser["items"] == [] and [w["quantity"] for w in loser["waitlist"]] == [1]
    assert loser["total"] == "0.00"
    outcomes = {r["buyerId"]: r["outcome"] for r in await comments(api, live)}
    assert outcomes == {"early": "ordered", "late": "waitlisted"}
    figures = await stock(api, SKU_A)
    assert (figures["available"], figures["reserved"], figures["oversold"]) == (0, 1, 0)
    await _no_drift(session_factory)


async def test_two_buyers_racing_for_the_last_unit_get_it_in_comment_order(
    api: httpx.AsyncClient, shop: Any, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    connection, _ = shop
    await set_stock(api, SKU_A, 1)
    live = await _live(api, connection)
    events = [
        feed_event(connection["shopId"], live["postId"], "CF A12", buyer=f"r-{n}", at=BASE_TIME + n)
        for n in range(2)
    ]
    # Both webhook jobs at once, each in its own transaction.
    await asyncio.gather(*(deliver(session_factory, connection, e) for e in reversed(events)))
    # The allocation job's pass (queued when a webhook found the live's lock taken).
    await allocate_session(session_factory, uuid.UUID(live["id"]))
    outcomes = {r["buyerId"]: r["outcome"] for r in await comments(api, live)}
    assert outcomes == {"r-0": "ordered", "r-1": "waitlisted"}
    figures = await stock(api, SKU_A)
    assert (figures["available"], figures["reserved"], figures["oversold"]) == (0, 1, 0)


async def test_a_line_asking_more_than_remains_takes_the_rest_and_waits(
    api: httpx.AsyncClient, shop: Any, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    connection, _ = shop
    await set_stock(api, SKU_A, 3)
    live = await _live(api, connection)
    event = await _say(session_factory, connection, live, "CF A12 x5")
    body = await _order_of(api, live, comment_id_of(event))
    assert [i["quantity"] for i in body["items"]] == [3]
    assert [(w["code"], w["quantity"]) for w in body["waitlist"]] == [("A12", 2)]
    assert body["total"] == "597.00"


async def test_the_session_cap_limits_what_the_live_sells(
    api: httpx.AsyncClient, shop: Any, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    connection, _ = shop
    live = await _live(api, connection, a=2)
    for n in range(3):
        await _say(session_factory, connection, live, "CF A12", buyer=f"c-{n}", at=BASE_TIME + n)
    outcomes = [r["outcome"] for r in await comments(api, live)]
    assert outcomes == ["ordered", "ordered", "waitlisted"]
    assert (await stock(api, SKU_A))["available"] == 3  # the rest stays for the other channels
    response = await api.patch(
        f"/api/marketplace/live-sessions/{live['id']}",
        json={
            "userId": USER,
            "products": [{"code": "A12", "sku": SKU_A, "price": "199", "quantity": 3}],
        },
        headers=HEADERS,
    )
    assert response.status_code == 200, response.text
    product = next(p for p in response.json()["data"]["products"] if p["code"] == "A12")
    assert (product["quantity"], product["reserved"], product["waiting"]) == (3, 3, 0)
    assert [r["outcome"] for r in await comments(api, live)] == ["ordered"] * 3


async def test_a_cancellation_serves_the_waiting_list_in_order(
    api: httpx.AsyncClient, shop: Any, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    connection, _ = shop
    await set_stock(api, SKU_A, 1)
    live = await _live(api, connection)
    events = [
        await _say(session_factory, connection, live, "CF A12", buyer=f"w-{n}", at=BASE_TIME + n)
        for n in range(3)
    ]
    holder = await _order_of(api, live, comment_id_of(events[0]))
    response = await api.post(
        f"/api/marketplace/orders/{holder['id']}/cancel", json={"userId": USER}, headers=HEADERS
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["status"] == "cancelled"
    assert response.json()["data"]["items"] == []
    first_waiting = await _order_of(api, live, comment_id_of(events[1]))
    second_waiting = await _order_of(api, live, comment_id_of(events[2]))
    assert [i["quantity"] for i in first_waiting["items"]] == [1]
    assert first_waiting["waitlist"] == []
    assert second_waiting["items"] == [] and len(second_waiting["waitlist"]) == 1
    figures = await stock(api, SKU_A)
    assert (figures["available"], figures["reserved"]) == (0, 1)
    again = await api.post(
        f"/api/marketplace/orders/{holder['id']}/cancel", json={"userId": USER}, headers=HEADERS
    )
    assert again.status_code == 409
    await _no_drift(session_factory)


async def test_a_duplicate_webhook_is_one_line(
    api: httpx.AsyncClient, shop: Any, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    connection, _ = shop
    live = await _live(api, connection)
    event = feed_event(connection["shopId"], live["postId"], "CF A12 2")
    for _ in range(3):
        await deliver(session_factory, connection, event)
    assert len(await comments(api, live)) == 1
    body = await _order_of(api, live, comment_id_of(event))
    assert [i["quantity"] for i in body["items"]] == [2]
    assert (await stock(api, SKU_A))["reserved"] == 2


async def test_a_deleted_comment_gives_its_units_to_the_next_in_line(
    api: httpx.AsyncClient, shop: Any, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    connection, _ = shop
    await set_stock(api, SKU_A, 1)
    live = await _live(api, connection)
    first = await _say(session_factory, connection, live, "CF A12", buyer="d-1")
    second = await _say(session_factory, connection, live, "CF A12", buyer="d-2", at=BASE_TIME + 1)
    removal = feed_event(
        connection["shopId"],
        live["postId"],
        "",
        buyer="d-1",
        comment_id=comment_id_of(first),
        verb="remove",
        entry_time=BASE_TIME + 30,
    )
    await deliver(session_factory, connection, removal)
    outcomes = {r["buyerId"]: r["outcome"] for r in await comments(api, live)}
    assert outcomes == {"d-1": "removed", "d-2": "ordered"}
    removed_order = await _order_of(api, live, comment_id_of(first))
    assert removed_order["items"] == [] and removed_order["status"] == "cancelled"
    assert [
        i["quantity"] for i in (await _order_of(api, live, comment_id_of(second)))["items"]
    ] == [1]
    # A late redelivery of the comment's "add" does not bring it back.
    await deliver(session_factory, connection, first)
    assert {r["buyerId"]: r["outcome"] for r in await comments(api, live)}["d-1"] == "removed"
    await _no_drift(session_factory)


async def test_an_edited_comment_changes_its_line_and_an_older_edit_does_not(
    api: httpx.AsyncClient, shop: Any, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    connection, _ = shop
    live = await _live(api, connection)
    event = await _say(session_factory, connection, live, "CF A12")
    comment_id = comment_id_of(event)

    async def edit(message: str, at: int) -> None:
        change = feed_event(
            connection["shopId"],
            live["postId"],
            message,
            comment_id=comment_id,
            verb="edited",
            entry_time=at,
        )
        await deliver(session_factory, connection, change)

    await edit("CF B3 x3", BASE_TIME + 20)
    await edit("CF A12 x4", BASE_TIME + 10)  # older than the edit applied: ignored
    body = await _order_of(api, live, comment_id)
    assert [(i["sku"], i["quantity"]) for i in body["items"]] == [(SKU_B, 3)]
    assert (await stock(api, SKU_A))["reserved"] == 0
    assert (await stock(api, SKU_B))["reserved"] == 3
    await edit("thank you", BASE_TIME + 30)
    rows = await comments(api, live)
    assert [(r["message"], r["outcome"]) for r in rows] == [("thank you", "not_an_order")]
    assert (await stock(api, SKU_B))["reserved"] == 0
    await _no_drift(session_factory)


async def test_mark_paid_and_cancel_a_live_order(
    api: httpx.AsyncClient, shop: Any, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    connection, _ = shop
    await set_stock(api, SKU_A, 2)
    live = await _live(api, connection)
    event = await _say(session_factory, connection, live, "CF A12 x3", buyer="p-1")
    body = await _order_of(api, live, comment_id_of(event))
    paid = await api.post(
        f"/api/marketplace/orders/{body['id']}/mark-paid", json={"userId": USER}, headers=HEADERS
    )
    assert paid.status_code == 200, paid.text
    assert paid.json()["data"]["status"] == "pending"
    assert paid.json()["data"]["paidAt"] is not None
    assert paid.json()["data"]["waitlist"] == []  # a paid order is what was paid for
    again = await api.post(
        f"/api/marketplace/orders/{body['id']}/mark-paid", json={"userId": USER}, headers=HEADERS
    )
    assert again.status_code == 409
    # The buyer's next CF starts a new order.
    later = await _say(session_factory, connection, live, "CF B3", buyer="p-1", at=BASE_TIME + 9)
    assert (await _order_of(api, live, comment_id_of(later)))["id"] != body["id"]
    cancelled = await api.post(
        f"/api/marketplace/orders/{body['id']}/cancel", json={"userId": USER}, headers=HEADERS
    )
    assert cancelled.status_code == 200
    figures = await stock(api, SKU_A)
    assert (figures["available"], figures["reserved"]) == (2, 0)
    await _no_drift(session_factory)


async def test_marketplace_orders_are_not_changed_here(
    api: httpx.AsyncClient, shop: Any, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    connection, _ = shop
    async with session_factory() as session:
        order_id = await session.scalar(
            text(
                "INSERT INTO marketplace_orders (connection_id, user_id, platform_code, "
                "external_order_id, status, raw_status, currency, subtotal, shipping_fee, "
                "discount, total, order_created_at, order_updated_at, raw, content_hash) "
                "VALUES (:c, :u, 'facebook', 'FB-1', 'unpaid', 'CREATED', 'THB', 1, 0, 0, 1, "
                "now(), now(), '{}', '\\x00000000000000000000000000000000') RETURNING id"
            ),
            {"c": uuid.UUID(connection["id"]), "u": USER},
        )
        await session.commit()
    for action in ("mark-paid", "cancel"):
        response = await api.post(
            f"/api/marketplace/orders/{order_id}/{action}", json={"userId": USER}, headers=HEADERS
        )
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "not_a_social_order"
    assert (await order(api, order_id))["channel"] == "marketplace"


async def test_live_sessions_are_for_facebook_connections(
    api: httpx.AsyncClient, sandbox: RunningSandbox, shop: Any
) -> None:
    credentials = await create_sandbox_shop(sandbox, "shopee")
    created = await api.post(
        "/api/marketplace/connections",
        json=connection_body(USER, "shopee", credentials),
        headers=HEADERS,
    )
    assert created.status_code == 201, created.text
    response = await api.post(
        "/api/marketplace/live-sessions",
        json={
            "userId": USER,
            "connectionId": created.json()["data"]["id"],
            "postId": "1_2",
            "products": [{"code": "A1", "sku": SKU_A, "price": "1"}],
        },
        headers=HEADERS,
    )
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "connectionId"


async def test_a_live_session_is_read_listed_and_closed(
    api: httpx.AsyncClient, shop: Any, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    connection, _ = shop
    live = await _live(api, connection)
    unknown = await api.post(
        "/api/marketplace/live-sessions",
        json={
            "userId": USER,
            "connectionId": connection["id"],
            "postId": "p",
            "products": [{"code": "Q1", "sku": "NO-SUCH-SKU", "price": "1"}],
        },
        headers=HEADERS,
    )
    assert unknown.status_code == 422
    busy = await api.post(
        "/api/marketplace/live-sessions",
        json={"userId": USER, "connectionId": connection["id"], "postId": live["postId"]},
        headers=HEADERS,
    )
    assert busy.status_code == 409
    listed = await api.get(
        "/api/marketplace/live-sessions", params={"userId": USER}, headers=HEADERS
    )
    assert [s["id"] for s in listed.json()["data"]] == [live["id"]]
    one = await api.get(
        f"/api/marketplace/live-sessions/{live['id']}", params={"userId": USER}, headers=HEADERS
    )
    assert [(p["code"], p["price"]) for p in one.json()["data"]["products"]] == [
        ("A12", "199.00"),
        ("B3", "350"),
    ]
    closed = await api.patch(
        f"/api/marketplace/live-sessions/{live['id']}",
        json={"userId": USER, "status": "closed"},
        headers=HEADERS,
    )
    assert closed.status_code == 200 and closed.json()["data"]["status"] == "closed"
    event = feed_event(connection["shopId"], live["postId"], "CF A12")
    assert await deliver(session_factory, connection, event) == "ignored"
    other = await api.get(
        f"/api/marketplace/live-sessions/{live['id']}",
        params={"userId": "someone-else"},
        headers=HEADERS,
    )
    assert other.status_code == 403


async def test_a_messenger_cart_becomes_an_order_holding_stock(
    api: httpx.AsyncClient, shop: Any, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    connection, _ = shop
    await set_stock(api, SKU_B, 1)
    event = {
        "object": "page",
        "entry": [
            {
                "id": connection["shopId"],
                "time": BASE_TIME * 1000,
                "messaging": [
                    {
                        "sender": {"id": "psid-9"},
                        "recipient": {"id": connection["shopId"]},
                        "timestamp": BASE_TIME * 1000,
                        "order": {
                            "products": [
                                {
                                    "id": "1",
                                    "retailer_id": SKU_A,
                                    "name": "Shirt",
                                    "unit_price": 199,
                                    "currency": "THB",
                                    "quantity": 2,
                                },
                                {
                                    "id": "2",
                                    "retailer_id": SKU_B,
                                    "name": "Bag",
                                    "unit_price": 350.5,
                                    "currency": "THB",
                                    "quantity": 2,
                                },
                            ],
                            "note": "ส่งด่วนค่ะ",
                        },
                    }
                ],
            }
        ],
    }
    for _ in range(2):  # a redelivered cart is the same order
        async with session_factory() as session:
            from app.live.service import handle_page_event

            assert (
                await handle_page_event(session, uuid.UUID(connection["id"]), "messages", event)
                == "processed"
            )
            await session.commit()
    rows = await live_orders(session_factory)
    assert len(rows) == 1
    body = await order(api, rows[0].id)
    assert body["channel"] == "messenger" and body["status"] == "unpaid"
    assert body["buyerExternalId"] == "psid-9"
    assert sorted((i["sku"], i["quantity"]) for i in body["items"]) == [(SKU_B, 1), (SKU_A, 2)]
    assert [(w["sku"], w["quantity"]) for w in body["waitlist"]] == [(SKU_B, 1)]
    assert Decimal(body["total"]) == Decimal("748.50")
    assert body["raw"]["note"] == "ส่งด่วนค่ะ"
    assert (await stock(api, SKU_B))["available"] == 0
    await _no_drift(session_factory)
