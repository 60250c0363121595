"""The drain: one job per shop takes every waiting event, reads the orders in bulk with the
sync's calls (counted at the sandboxes), writes them through the sync's ingest exactly once,
and backs off, fails, re-drives and recovers events as the rows say."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import MarketplaceOrder, MarketplaceWebhook
from app.platforms.types import PlatformCode
from app.webhooks import drain, repository, service
from app.worker_context import WorkerContext
from tests.conftest import RunningSandbox, auth_headers
from tests.sync.conftest import connect_shop, control
from tests.webhooks.conftest import (
    PUBLIC_BASE_URL,
    PUSH_URL,
    encode,
    shopee_push,
    signed,
    stored_events,
)

pytestmark = pytest.mark.usefixtures("sandbox_to_api")

URL = PUBLIC_BASE_URL + PUSH_URL
DETAIL_CALL = "/api/v2/order/get_order_detail"


def graph_calls(wc: WorkerContext) -> Counter[str]:
    """Graph paths the worker calls from now on (`{id}` for a node read)."""
    calls: Counter[str] = Counter()

    async def count(request: httpx.Request) -> None:
        parts = request.url.path.strip("/").split("/")[1:]  # without the version
        calls["/".join(["{id}", *parts[1:]]) if parts[0].isdigit() else "/".join(parts)] += 1

    wc.http.event_hooks["request"].append(count)
    return calls


async def post(api: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> None:
    response = await api.post(
        PUSH_URL, content=body, headers={"Content-Type": "application/json", **headers}
    )
    assert response.status_code == 200, response.text


async def push_shopee(api: httpx.AsyncClient, credentials: dict[str, str], sns: list[str]) -> None:
    for n, order_sn in enumerate(sns):
        body = shopee_push(
            credentials["shopId"], ordersn=order_sn, status="READY_TO_SHIP", update_time=1000 + n
        )
        await post(api, body, signed("shopee", credentials, body))


def shopee_sns(sandbox: RunningSandbox, credentials: dict[str, str], count: int) -> list[str]:
    shop = sandbox.sandboxes.shopee.shops[int(credentials["shopId"])]
    return [shop.order_sn(i) for i in range(count)]


async def stored_order_ids(session_factory: async_sessionmaker[AsyncSession]) -> set[str]:
    async with session_factory() as session:
        return set(await session.scalars(select(MarketplaceOrder.external_order_id)))


async def make_due(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """As if every back-off and lease had run out."""
    async with session_factory() as session:
        await session.execute(
            update(MarketplaceWebhook).values(next_attempt_at=text("now() - interval '1 minute'"))
        )
        await session.commit()


async def test_a_backlog_of_one_shop_is_read_fifty_orders_a_call_in_one_drain(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
) -> None:
    connection, credentials = await connect_shop(api, sandbox, "shopee", order_count=130)
    sns = shopee_sns(sandbox, credentials, 120)
    await push_shopee(api, credentials, sns)
    await push_shopee(api, credentials, sns[:5])  # redeliveries: no new events
    assert len(await stored_events(session_factory)) == 120
    calls = sandbox.sandboxes.shopee.calls
    before = calls[DETAIL_CALL]

    outcome = await drain.drain(worker_context, uuid.UUID(connection["id"]))

    assert outcome == {"processed": 120}
    assert calls[DETAIL_CALL] == before + 3  # 50 + 50 + 20
    events = await stored_events(session_factory)
    assert {(e.status, e.attempts) for e in events} == {("processed", 1)}
    assert await stored_order_ids(session_factory) == set(sns)
    # Exactly once: another drain finds nothing and calls nobody.
    assert await drain.drain(worker_context, uuid.UUID(connection["id"])) == {}
    assert calls[DETAIL_CALL] == before + 3


async def test_an_order_not_returned_backs_off_alone_then_fails(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
) -> None:
    connection, credentials = await connect_shop(api, sandbox, "shopee", order_count=10)
    real = shopee_sns(sandbox, credentials, 3)
    await push_shopee(api, credentials, [real[0], "991231NOSUCHSN", *real[1:]])
    connection_id = uuid.UUID(connection["id"])

    assert await drain.drain(worker_context, connection_id) == {"processed": 3, "received": 1}
    rows = {e.dedupe_key.split(":")[1]: e for e in await stored_events(session_factory)}
    missing = rows["991231NOSUCHSN"]
    assert (missing.status, missing.attempts) == ("received", 1)
    assert missing.error_message and "991231NOSUCHSN" in missing.error_message
    assert missing.next_attempt_at > datetime.now(UTC) - timedelta(seconds=1)

    attempts = worker_context.settings.clients.max_attempts
    for _ in range(attempts - 1):
        await make_due(session_factory)
        await drain.drain(worker_context, connection_id)
    rows = {e.id: e for e in await stored_events(session_factory)}
    assert (rows[missing.id].status, rows[missing.id].attempts) == ("failed", attempts)
    assert Counter(e.status for e in rows.values()) == {"processed": 3, "failed": 1}
    assert await stored_order_ids(session_factory) == set(real)


async def test_a_failed_read_backs_off_every_event_and_a_later_drain_finishes_them(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
) -> None:
    connection, credentials = await connect_shop(api, sandbox, "shopee", order_count=10)
    sns = shopee_sns(sandbox, credentials, 3)
    await push_shopee(api, credentials, sns)
    await control(sandbox, "shopee", "faults", {"server_error_rate": 1.0})
    connection_id = uuid.UUID(connection["id"])

    assert await drain.drain(worker_context, connection_id) == {"received": 3}
    failed = await stored_events(session_factory)
    assert {(e.status, e.attempts) for e in failed} == {("received", 1)}
    assert all(e.error_message and "500" in e.error_message for e in failed)

    await control(sandbox, "shopee", "faults", {"reset": True})
    await make_due(session_factory)
    assert await drain.drain(worker_context, connection_id) == {"processed": 3}
    assert {
        (e.status, e.attempts, e.error_message) for e in await stored_events(session_factory)
    } == {("processed", 2, None)}


async def test_events_of_a_worker_that_died_mid_drain_are_finished_by_the_next(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
    queued_jobs: Any,
    redis: Any,
) -> None:
    connection, credentials = await connect_shop(api, sandbox, "shopee", order_count=20)
    sns = shopee_sns(sandbox, credentials, 12)
    await push_shopee(api, credentials, sns)
    connection_id = uuid.UUID(connection["id"])
    # A worker claims the events and dies before writing anything.
    async with session_factory() as session:
        lease = datetime.now(UTC) + timedelta(seconds=drain.LEASE_SECONDS)
        claimed = await repository.claim(session, connection_id, drain.CLAIM_LIMIT, lease)
        await session.commit()
    assert len(claimed) == 12
    await redis.flushdb()

    # While the lease holds, nobody takes them and the sweep leaves them alone.
    assert await drain.drain(worker_context, connection_id) == {}
    assert await service.sweep(worker_context) == 0
    await make_due(session_factory)  # the lease ran out
    assert await service.sweep(worker_context) == 1
    assert await queued_jobs() == 1

    assert await drain.drain(worker_context, connection_id) == {"processed": 12}
    assert {e.status for e in await stored_events(session_factory)} == {"processed"}
    assert await stored_order_ids(session_factory) == set(sns)


async def test_a_pass_that_lost_its_lease_records_nothing(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
) -> None:
    connection, credentials = await connect_shop(api, sandbox, "shopee", order_count=10)
    await push_shopee(api, credentials, shopee_sns(sandbox, credentials, 2))
    connection_id = uuid.UUID(connection["id"])
    slow = await drain._claim(worker_context, connection_id, [])
    assert slow is not None
    client = await drain._client(worker_context, connection_id)
    await drain._read(worker_context, slow, client)
    assert client is not None
    await client.aclose()
    await make_due(session_factory)  # its lease ran out while it read; another drain runs
    assert await drain.drain(worker_context, connection_id) == {"processed": 2}

    assert await drain._write(worker_context, slow) == Counter()
    assert {(e.status, e.attempts) for e in await stored_events(session_factory)} == {
        ("processed", 1)
    }


@pytest.mark.parametrize("claim_limit", [drain.CLAIM_LIMITS[PlatformCode.LAZADA], 40])
async def test_a_lazada_backlog_is_read_by_update_window_and_items_in_bulk(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
    monkeypatch: pytest.MonkeyPatch,
    claim_limit: int,
) -> None:
    # With a small claim the drain takes several passes: they share one window listing.
    monkeypatch.setitem(drain.CLAIM_LIMITS, PlatformCode.LAZADA, claim_limit)
    connection, credentials = await connect_shop(api, sandbox, "lazada", order_count=300)
    changed = await control(
        sandbox, "lazada", "orders/change", {"shopId": credentials["shopId"], "fraction": 0.2}
    )
    order_ids = [str(c["orderId"]) for c in changed["changed"]]
    await control(
        sandbox,
        "lazada",
        "webhooks/send",
        {"shopId": credentials["shopId"], "url": URL, "orderIds": order_ids},
    )
    events = await stored_events(session_factory)
    assert len(events) > len(order_ids)  # one push per order line
    calls = sandbox.sandboxes.lazada.calls
    before = Counter(calls)

    outcome = await drain.drain(worker_context, uuid.UUID(connection["id"]))

    assert outcome == {"processed": len(events)}
    made = Counter(calls)
    made.subtract(before)
    assert made["/order/get"] == 0 and made["/order/items/get"] == 0
    assert made["/orders/get"] == -(-len(order_ids) // 100)
    passes = -(-len(events) // claim_limit)
    assert made["/orders/items/get"] <= -(-len(order_ids) // 50) + passes - 1
    assert await stored_order_ids(session_factory) == set(order_ids)


async def test_a_lazada_order_outside_the_window_is_read_by_id(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
) -> None:
    connection, credentials = await connect_shop(api, sandbox, "lazada", order_count=30)
    lz = sandbox.sandboxes.lazada
    old = lz.order(
        lz.shops[credentials["shopId"]], 0
    )  # untouched: its update time is days before the push says
    now = int(time.time())
    body = encode(
        {
            "seller_id": credentials["shopId"],
            "message_type": 0,
            "data": {
                "order_status": "pending",
                "trade_order_id": str(old.order_id),
                "trade_order_line_id": "1",
                "status_update_time": now,
            },
            "timestamp": now * 1000,
        }
    )
    await post(api, body, signed("lazada", credentials, body))
    before = Counter(lz.calls)

    assert await drain.drain(worker_context, uuid.UUID(connection["id"])) == {"processed": 1}
    made = Counter(lz.calls)
    made.subtract(before)
    assert (made["/orders/get"], made["/order/get"], made["/orders/items/get"]) == (1, 1, 1)
    assert await stored_order_ids(session_factory) == {str(old.order_id)}


async def test_one_meta_delivery_of_many_changes_is_an_event_each_read_in_bulk(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
) -> None:
    connection, credentials = await connect_shop(api, sandbox, "facebook", order_count=60)
    changed = await control(
        sandbox, "facebook", "orders/change", {"shopId": credentials["shopId"], "fraction": 0.5}
    )
    order_ids = [str(c["orderId"]) for c in changed["changed"]]
    sent = await control(
        sandbox,
        "facebook",
        "webhooks/send",
        {"shopId": credentials["shopId"], "url": URL, "orderIds": order_ids},
    )
    assert sent["status"] == 200
    events = await stored_events(session_factory)
    assert len(events) == len(order_ids) == len(sent["orderIds"])
    assert {e.event_type for e in events} == {"commerce_orders"}
    calls = graph_calls(worker_context)

    outcome = await drain.drain(worker_context, uuid.UUID(connection["id"]))

    assert outcome == {"processed": len(events)}
    assert calls["{id}"] == 0  # no order read one by one
    assert await stored_order_ids(session_factory) == set(sent["orderIds"])


async def test_every_change_of_every_entry_of_a_meta_delivery_is_captured(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
) -> None:
    connection, credentials = await connect_shop(api, sandbox, "facebook")
    now = int(time.time())
    page = credentials["shopId"]

    def comment(n: int) -> dict[str, Any]:
        value = {"item": "comment", "verb": "add", "comment_id": f"{page}_1_{n}", "message": "hi"}
        return {"field": "feed", "value": {**value, "from": {"id": str(n)}, "created_time": now}}

    entries = [
        {"id": page, "time": now, "changes": [comment(n) for n in range(k * 300, k * 300 + 300)]}
        for k in range(3)
    ]
    entries.append(
        {
            "id": page,
            "time": now * 1000,
            "messaging": [
                {"sender": {"id": f"7{n}"}, "recipient": {"id": page}, "timestamp": now * 1000 + n}
                for n in range(100)
            ],
        }
    )
    body = encode({"object": "page", "entry": entries})
    await post(api, body, signed("facebook", credentials, body))
    await post(api, body, signed("facebook", credentials, body))  # redelivered: same events

    events = await stored_events(session_factory)
    assert Counter(e.event_type for e in events) == {"feed": 900, "messages": 100}
    # Each event holds its one change, as the live-selling handler reads it.
    assert {len(e.payload["entry"]) for e in events} == {1}
    assert {
        len(e.payload["entry"][0].get("changes") or e.payload["entry"][0]["messaging"])
        for e in events
    } == {1}
    outcome = await drain.drain(worker_context, uuid.UUID(connection["id"]))
    assert sum(outcome.values()) == 1000 and "received" not in outcome


async def test_a_retried_event_is_drained_again(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
    queued_jobs: Any,
    redis: Any,
) -> None:
    connection, credentials = await connect_shop(api, sandbox, "shopee", order_count=10)
    [order_sn] = shopee_sns(sandbox, credentials, 1)
    await push_shopee(api, credentials, [order_sn])
    async with session_factory() as session:
        await session.execute(update(MarketplaceWebhook).values(status="failed"))
        await session.commit()
    [event] = await stored_events(session_factory)
    await redis.flushdb()

    retried = await api.post(
        f"/api/marketplace/webhooks/{event.id}/retry", headers=auth_headers("seller-1")
    )

    assert retried.status_code == 200 and retried.json()["data"]["status"] == "received"
    assert await queued_jobs() == 1
    assert await drain.drain(worker_context, uuid.UUID(connection["id"])) == {"processed": 1}
    assert await stored_order_ids(session_factory) == {order_sn}
