"""Order events of one connection processed together: one marketplace read and one upsert for
the waiting events, each event then processed, or retried on its own."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from arq.worker import Retry
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import MarketplaceWebhook
from app.webhooks import service
from app.worker_context import WorkerContext
from tests.conftest import RunningSandbox, auth_headers
from tests.sync.conftest import connect_shop, control
from tests.webhooks.conftest import PUSH_URL, shopee_push, signed, stored_events

DETAIL_CALL = "/api/v2/order/get_order_detail"


async def push_orders(
    api: httpx.AsyncClient, credentials: dict[str, str], order_sns: list[str]
) -> None:
    """One signed Shopee order-status push per order, through the API."""
    for n, order_sn in enumerate(order_sns):
        body = shopee_push(
            credentials["shopId"], ordersn=order_sn, status="READY_TO_SHIP", update_time=1000 + n
        )
        response = await api.post(
            PUSH_URL,
            content=body,
            headers={"Content-Type": "application/json", **signed("shopee", credentials, body)},
        )
        assert response.status_code == 200, response.text


def order_sns(sandbox: RunningSandbox, credentials: dict[str, str], count: int) -> list[str]:
    shop = sandbox.sandboxes.shopee.shops[int(credentials["shopId"])]
    return [shop.order_sn(i) for i in range(count)]


def detail_calls(sandbox: RunningSandbox) -> int:
    return sandbox.sandboxes.shopee.calls[DETAIL_CALL]


async def stored_order_ids(api: httpx.AsyncClient) -> set[str]:
    response = await api.get(
        "/api/marketplace/orders", params={"limit": 200}, headers=auth_headers("seller-1")
    )
    assert response.status_code == 200, response.text
    return {o["externalOrderId"] for o in response.json()["data"]}


async def test_waiting_order_events_of_a_connection_are_read_in_one_call(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
) -> None:
    _, credentials = await connect_shop(api, sandbox, "shopee", order_count=70)
    sns = order_sns(sandbox, credentials, service.ORDER_BATCH + 10)
    await push_orders(api, credentials, sns)
    events = await stored_events(session_factory)
    before = detail_calls(sandbox)

    assert await service.process(worker_context, events[0].id) == "processed"

    assert detail_calls(sandbox) == before + 1
    after = await stored_events(session_factory)
    taken, left = after[: service.ORDER_BATCH], after[service.ORDER_BATCH :]
    assert {(e.status, e.attempts) for e in taken} == {("processed", 1)}
    assert {e.status for e in left} == {"received"}
    assert await stored_order_ids(api) == set(sns[: service.ORDER_BATCH])

    # Exactly once: the jobs of the events taken along find nothing to do.
    assert {await service.process(worker_context, e.id) for e in taken} == {"skipped"}
    assert detail_calls(sandbox) == before + 1
    assert await service.process(worker_context, left[-1].id) == "processed"
    assert detail_calls(sandbox) == before + 2
    assert {e.status for e in await stored_events(session_factory)} == {"processed"}
    assert await stored_order_ids(api) == set(sns)


async def test_an_event_whose_order_is_not_returned_is_retried_and_fails_alone(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
    redis: Any,
) -> None:
    _, credentials = await connect_shop(api, sandbox, "shopee", order_count=10)
    real = order_sns(sandbox, credentials, 3)
    await push_orders(api, credentials, [real[0], "991231NOSUCHSN", *real[1:]])
    first, unknown, *others = await stored_events(session_factory)
    await redis.flushdb()  # forget the jobs the API queued: only the worker's own remain
    before = detail_calls(sandbox)

    assert await service.process(worker_context, first.id) == "processed"

    assert detail_calls(sandbox) == before + 1
    rows = {e.id: e for e in await stored_events(session_factory)}
    assert {rows[e.id].status for e in (first, *others)} == {"processed"}
    missing = rows[unknown.id]
    assert (missing.status, missing.attempts) == ("received", 1)
    assert missing.error_message and "991231NOSUCHSN" in missing.error_message
    # It has its own job, deferred by its back-off.
    due_ms = await redis.zscore("arq:queue", service.job_id(unknown.id))
    assert due_ms is not None and due_ms > time.time() * 1000
    # A first try that comes early waits the back-off out instead of calling the marketplace.
    with pytest.raises(Retry) as early:
        await service.process(worker_context, unknown.id, job_try=1)
    assert 0 < early.value.defer_score <= service.retry_delay(1) * 1000
    assert detail_calls(sandbox) == before + 1

    assert await service.process(worker_context, unknown.id, service.MAX_ATTEMPTS) == "failed"
    rows = {e.id: e for e in await stored_events(session_factory)}
    assert (rows[unknown.id].status, rows[unknown.id].attempts) == ("failed", 2)
    assert {rows[e.id].status for e in (first, *others)} == {"processed"}
    assert await stored_order_ids(api) == set(real)


async def test_a_failed_batch_read_backs_off_each_event_and_is_retried_together(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
) -> None:
    _, credentials = await connect_shop(api, sandbox, "shopee", order_count=10)
    sns = order_sns(sandbox, credentials, 3)
    await push_orders(api, credentials, sns)
    first, *others = await stored_events(session_factory)
    await control(sandbox, "shopee", "faults", {"server_error_rate": 1.0})

    with pytest.raises(Retry):
        await service.process(worker_context, first.id)

    failed = await stored_events(session_factory)
    assert {(e.status, e.attempts) for e in failed} == {("received", 1)}
    assert all(e.error_message and "500" in e.error_message for e in failed)
    with pytest.raises(Retry):  # the others' own first tries wait for the back-off too
        await service.process(worker_context, others[0].id)

    await control(sandbox, "shopee", "faults", {"reset": True})
    async with session_factory() as session:  # as if the back-off had passed
        await session.execute(
            update(MarketplaceWebhook).values(
                next_attempt_at=MarketplaceWebhook.next_attempt_at
                - timedelta(seconds=service.retry_delay(1))
            )
        )
        await session.commit()
    before = detail_calls(sandbox)
    assert await service.process(worker_context, first.id, job_try=2) == "processed"
    assert detail_calls(sandbox) == before + 1
    assert {(e.status, e.attempts) for e in await stored_events(session_factory)} == {
        ("processed", 2)
    }
