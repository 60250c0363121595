"""Erasing buyer data: the daily retention job and a disconnect with eraseBuyerData=true clear
the buyer fields and their copies in the raw payload; orders, items and amounts stay."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.buyers import tasks
from app.buyers.service import erase_expired_buyer_data
from app.models import MarketplaceConnection, MarketplaceOrder, MarketplaceOrderItem
from app.worker_context import WorkerContext
from tests.buyers.payloads import RAW_PAYLOADS, SHOP, buyer_values, leaks, normalized
from tests.conftest import auth_headers, make_settings
from tests.orders.factories import Order, add_connection, add_orders, ingest_orders

USER = "seller-erasure"
SessionFactory = async_sessionmaker[AsyncSession]
# The seeded shop's orders are from January 2026; a month of retention makes them all old.
NOW = datetime(2026, 12, 1, tzinfo=UTC)
RETENTION_DAYS = 30
PLATFORMS = sorted(RAW_PAYLOADS)


async def store_seeded(
    session_factory: SessionFactory, platform: str, count: int = 3, user: str = USER
) -> uuid.UUID:
    connection = await add_connection(session_factory, user, platform)
    orders = [normalized(platform, RAW_PAYLOADS[platform](SHOP.order(i))) for i in range(count)]
    await ingest_orders(session_factory, connection, orders)
    return connection


async def stored(session_factory: SessionFactory, connection: uuid.UUID) -> list[MarketplaceOrder]:
    async with session_factory() as session:
        rows = await session.scalars(
            select(MarketplaceOrder)
            .where(MarketplaceOrder.connection_id == connection)
            .order_by(MarketplaceOrder.external_order_id)
        )
        return list(rows)


async def item_count(session_factory: SessionFactory) -> int:
    async with session_factory() as session:
        count = await session.scalar(select(func.count()).select_from(MarketplaceOrderItem))
        return int(count or 0)


def assert_erased(order: MarketplaceOrder, secrets: list[str]) -> None:
    buyer = (order.buyer_name, order.buyer_phone, order.buyer_email, order.shipping_address)
    assert buyer == (None, None, None, None)
    assert order.buyer_erased_at is not None
    assert leaks(order.raw, secrets) == []


def all_buyer_values(count: int = 3) -> list[str]:
    return [value for i in range(count) for value in buyer_values(SHOP.order(i))]


# --------------------------------------------------------------------------- retention


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_retention_erases_old_orders_and_keeps_their_items_and_amounts(
    session_factory: SessionFactory, clean: None, platform: str
) -> None:
    old = await store_seeded(session_factory, platform)
    recent = await add_connection(session_factory, USER, platform)
    await add_orders(
        session_factory,
        recent,
        [Order("RECENT-1", created_at=NOW - timedelta(days=2), buyer_email="a@example.com")],
    )
    before = await stored(session_factory, old)
    items_before = await item_count(session_factory)

    erased = await erase_expired_buyer_data(session_factory, RETENTION_DAYS, now=NOW)

    assert erased == len(before) == 3
    after = await stored(session_factory, old)
    for was, now in zip(before, after, strict=True):
        assert_erased(now, all_buyer_values())
        assert (now.external_order_id, now.status, now.total, now.subtotal, now.currency) == (
            was.external_order_id,
            was.status,
            was.total,
            was.subtotal,
            was.currency,
        )
    assert await item_count(session_factory) == items_before
    [kept] = await stored(session_factory, recent)
    assert (kept.buyer_name, kept.buyer_phone, kept.buyer_email) == (
        "Somchai Srisuk",
        "+66812345678",
        "a@example.com",
    )
    assert kept.buyer_erased_at is None


async def test_retention_run_twice_erases_nothing_more(
    session_factory: SessionFactory, clean: None
) -> None:
    connection = await store_seeded(session_factory, "shopee")
    assert await erase_expired_buyer_data(session_factory, RETENTION_DAYS, now=NOW) == 3
    first = [o.buyer_erased_at for o in await stored(session_factory, connection)]
    assert await erase_expired_buyer_data(session_factory, RETENTION_DAYS, now=NOW) == 0
    assert [o.buyer_erased_at for o in await stored(session_factory, connection)] == first


async def test_no_retention_setting_keeps_buyer_data(
    session_factory: SessionFactory, clean: None
) -> None:
    connection = await store_seeded(session_factory, "lazada")
    assert await erase_expired_buyer_data(session_factory, None, now=NOW) == 0
    assert all(o.buyer_erased_at is None for o in await stored(session_factory, connection))


async def test_retention_counts_from_the_order_creation_time(
    session_factory: SessionFactory, clean: None
) -> None:
    connection = await add_connection(session_factory, USER, "shopee")
    await add_orders(
        session_factory,
        connection,
        [
            Order("JUST-OLD", created_at=NOW - timedelta(days=RETENTION_DAYS, seconds=1)),
            Order("NOT-YET", created_at=NOW - timedelta(days=RETENTION_DAYS, seconds=-60)),
        ],
    )
    assert await erase_expired_buyer_data(session_factory, RETENTION_DAYS, now=NOW) == 1
    orders = await stored(session_factory, connection)
    erased = {o.external_order_id: o.buyer_erased_at for o in orders}
    assert erased["JUST-OLD"] is not None and erased["NOT-YET"] is None


async def test_retention_erases_a_large_backlog_in_batches(
    session_factory: SessionFactory, clean: None
) -> None:
    connection = await store_seeded(session_factory, "facebook", count=5)
    erased = await erase_expired_buyer_data(session_factory, RETENTION_DAYS, now=NOW, batch_size=2)
    assert erased == 5
    for order in await stored(session_factory, connection):
        assert_erased(order, all_buyer_values(5))


async def test_an_order_filled_again_by_a_newer_version_is_erased_again(
    session_factory: SessionFactory, clean: None
) -> None:
    connection = await store_seeded(session_factory, "shopee", count=1)
    assert await erase_expired_buyer_data(session_factory, RETENTION_DAYS, now=NOW) == 1
    seed = SHOP.order(0)
    newer = replace(seed, updated_at=seed.updated_at + timedelta(days=3))
    await ingest_orders(
        session_factory, connection, [normalized("shopee", RAW_PAYLOADS["shopee"](newer))]
    )
    [refilled] = await stored(session_factory, connection)
    assert refilled.buyer_phone == seed.buyer_phone  # the platform sent it again
    assert await erase_expired_buyer_data(session_factory, RETENTION_DAYS, now=NOW) == 1
    [order] = await stored(session_factory, connection)
    assert_erased(order, buyer_values(seed))


async def test_daily_job_erases_by_the_retention_setting(
    database_url: str, redis_url: str, session_factory: SessionFactory, clean: None
) -> None:
    connection = await store_seeded(session_factory, "lazada")
    settings = make_settings(database_url, redis_url, BUYER_DATA_RETENTION_DAYS=RETENTION_DAYS)
    wc = WorkerContext.create(settings)
    try:
        erased = await tasks.erase_expired_buyer_data({"app": wc})  # type: ignore[typeddict-item]
    finally:
        await wc.close()
    assert erased == 3
    for order in await stored(session_factory, connection):
        assert_erased(order, all_buyer_values())


def test_the_job_runs_daily() -> None:
    [job] = tasks.CRON_JOBS
    assert job.name == "cron:erase_expired_buyer_data"
    assert len(job.hour) == 1 and job.unique


# --------------------------------------------------------------------------- disconnect


async def disconnect(api: httpx.AsyncClient, connection: uuid.UUID, **params: Any) -> None:
    response = await api.delete(
        f"/api/marketplace/connections/{connection}",
        params={"userId": USER, **params},
        headers=auth_headers(USER),
    )
    assert response.status_code == 204, response.text


async def detail(api: httpx.AsyncClient, order_id: int) -> dict[str, Any]:
    response = await api.get(
        f"/api/marketplace/orders/{order_id}", params={"userId": USER}, headers=auth_headers(USER)
    )
    assert response.status_code == 200, response.text
    order: dict[str, Any] = response.json()["data"]
    return order


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_disconnect_with_erase_buyer_data_erases_that_connections_orders_only(
    buyers_api: httpx.AsyncClient, session_factory: SessionFactory, platform: str
) -> None:
    leaving = await store_seeded(session_factory, platform)
    staying = await store_seeded(session_factory, platform)
    await disconnect(buyers_api, leaving, eraseBuyerData="true")

    for order in await stored(session_factory, leaving):
        shown = await detail(buyers_api, order.id)
        assert (shown["buyerName"], shown["buyerPhone"], shown["buyerEmail"]) == (None, None, None)
        assert shown["shippingAddress"] is None and shown["buyerErasedAt"] is not None
        assert leaks(shown["raw"], all_buyer_values()) == []
        assert shown["items"] and shown["total"]
    for order in await stored(session_factory, staying):
        assert order.buyer_erased_at is None and order.buyer_name is not None
    async with session_factory() as session:
        connection = await session.get(MarketplaceConnection, leaving)
        assert connection is not None and connection.status == "disconnected"


async def test_disconnect_without_the_flag_keeps_buyer_data(
    buyers_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    connection = await store_seeded(session_factory, "shopee")
    await disconnect(buyers_api, connection)
    for order in await stored(session_factory, connection):
        assert order.buyer_erased_at is None and order.buyer_phone is not None


async def test_a_disconnected_connection_can_be_erased_later(
    buyers_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    connection = await store_seeded(session_factory, "lazada")
    await disconnect(buyers_api, connection)
    await disconnect(buyers_api, connection, eraseBuyerData="true")
    for order in await stored(session_factory, connection):
        assert_erased(order, all_buyer_values())


async def test_disconnect_of_another_users_connection_erases_nothing(
    buyers_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    theirs = await store_seeded(session_factory, "shopee", user="someone-else")
    response = await buyers_api.delete(
        f"/api/marketplace/connections/{theirs}",
        params={"eraseBuyerData": "true"},
        headers=auth_headers(USER),
    )
    assert response.status_code == 404
    assert all(o.buyer_erased_at is None for o in await stored(session_factory, theirs))
