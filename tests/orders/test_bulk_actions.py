"""Bulk mark-paid and cancel of live orders: a result per order in order, bad rows (a
marketplace order, another user's, an unknown id, a repeat, the wrong state) never stop the
others, and the stock moves as the single actions move it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.bulk import apply_row
from app.inventory.recompute import recompute_counters
from app.orders.bulk import MAX_ORDERS
from tests.conftest import RunningSandbox, make_settings
from tests.live.conftest import PUBLIC_BASE_URL, live_app
from tests.live.helpers import (
    HEADERS,
    USER,
    comments,
    deliver,
    facebook_shop,
    feed_event,
    open_live,
    order,
    set_stock,
    stock,
)
from tests.orders.factories import Order, add_connection, add_orders

SKU = "BULK-SHIRT"


@pytest.fixture
async def api(
    database_url: str, redis_url: str, sandbox: RunningSandbox, clean: None
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database_url, redis_url, sandbox, PUBLIC_BASE_URL=PUBLIC_BASE_URL)
    async with live_app(settings) as client:
        yield client


async def live_orders_of(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    buyers: int,
) -> list[int]:
    """One unpaid live order per buyer, each holding one unit of SKU."""
    connection, _ = await facebook_shop(api, sandbox)
    await set_stock(api, SKU, 10)
    live = await open_live(api, connection, [{"code": "A1", "sku": SKU, "price": "100"}])
    for n in range(buyers):
        event = feed_event(
            connection["shopId"], live["postId"], "CF A1", buyer=f"u-{n}", at=1_790_000_000 + n
        )
        assert await deliver(session_factory, connection, event) == "processed"
    ids = [c["orderId"] for c in await comments(api, live)]
    assert len(ids) == buyers and all(ids)
    return ids


async def bulk(api: httpx.AsyncClient, action: str, order_ids: list[Any]) -> httpx.Response:
    return await api.post(
        "/api/marketplace/orders/bulk",
        json={"userId": USER, "action": action, "orderIds": order_ids},
        headers=HEADERS,
    )


def outcomes(response: httpx.Response) -> list[tuple[Any, ...]]:
    assert response.status_code == 200, response.text
    return [
        (r["orderId"], r["status"], (r.get("error") or {}).get("code"))
        for r in response.json()["data"]
    ]


async def test_bulk_mark_paid_and_cancel_mixed_with_bad_rows(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    first, second, third = await live_orders_of(api, sandbox, session_factory, 3)
    assert (await stock(api, SKU))["available"] == 7
    shopee = await add_connection(session_factory, USER, "shopee")
    [marketplace] = await add_orders(session_factory, shopee, [Order("MP-1")])
    stranger = await add_connection(session_factory, "seller-2", "shopee")
    [theirs] = await add_orders(session_factory, stranger, [Order("THEIRS-1")])

    response = await bulk(api, "mark-paid", [first, marketplace, second, theirs, 99_999, first])
    assert outcomes(response) == [
        (first, "ok", None),
        (marketplace, "error", "not_a_social_order"),
        (second, "ok", None),
        (theirs, "error", "not_found"),
        (99_999, "error", "not_found"),
        (first, "error", "duplicate_order"),
    ]
    errors = [r["error"] for r in response.json()["data"] if r["status"] == "error"]
    assert [e["field"] for e in errors] == [
        "orderIds[1]",
        "orderIds[3]",
        "orderIds[4]",
        "orderIds[5]",
    ]
    assert all(e["message"] for e in errors)
    assert [(await order(api, i))["status"] for i in (first, second, third)] == [
        "pending",
        "pending",
        "unpaid",
    ]

    # Cancel a paid one and an unpaid one; the third is already cancelled when asked again.
    response = await bulk(api, "cancel", [first, third, marketplace])
    assert outcomes(response) == [
        (first, "ok", None),
        (third, "ok", None),
        (marketplace, "error", "not_a_social_order"),
    ]
    response = await bulk(api, "cancel", [third, second])
    assert outcomes(response) == [(third, "error", "order_state_conflict"), (second, "ok", None)]
    response = await bulk(api, "mark-paid", [first])
    assert outcomes(response) == [(first, "error", "order_state_conflict")]
    assert [(await order(api, i))["status"] for i in (first, second, third)] == ["cancelled"] * 3
    row = await stock(api, SKU)
    assert (row["available"], row["reserved"]) == (10, 0)  # every unit came back, once
    assert await recompute_counters(session_factory) == []


async def test_a_malformed_bulk_order_action_is_a_422_naming_the_field(
    api: httpx.AsyncClient,
) -> None:
    def fields(response: httpx.Response) -> list[str]:
        assert response.status_code == 422, response.text
        return [str(f["field"]) for f in response.json()["error"]["fields"]]

    assert any("orderIds" in f for f in fields(await bulk(api, "cancel", [1] * (MAX_ORDERS + 1))))
    assert any("orderIds" in f for f in fields(await bulk(api, "cancel", [])))
    assert any("action" in f for f in fields(await bulk(api, "ship", [1])))
    assert any("orderIds" in f for f in fields(await bulk(api, "cancel", ["abc"])))


class _Deadlock(Exception):
    sqlstate = "40P01"


async def test_a_row_that_loses_a_deadlock_is_retried_in_a_fresh_savepoint(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    tries = 0

    async def loses_twice() -> None:
        nonlocal tries
        tries += 1
        await session.execute(text("CREATE TEMPORARY TABLE IF NOT EXISTS bulk_try (n int)"))
        await session.execute(text("INSERT INTO bulk_try VALUES (:n)"), {"n": tries})
        if tries < 3:
            raise DBAPIError("INSERT", None, _Deadlock())

    async with session_factory() as session:
        assert await apply_row(session, loses_twice, field="orderIds[0]") is None
        # Only the successful try's work is kept: the lost ones were rolled back.
        assert list(await session.scalars(text("SELECT n FROM bulk_try"))) == [3]

        async def always_loses() -> None:
            raise DBAPIError("UPDATE", None, _Deadlock())

        error = await apply_row(session, always_loses, field="orderIds[1]")
        assert error is not None and (error.code, error.field) == ("busy", "orderIds[1]")
        await session.rollback()
    assert tries == 3
