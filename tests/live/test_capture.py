"""Comments are captured cheaply by the webhook and placed by one allocation job per live, in
batches, in comment-time order; replies go after commit and a failing one blocks no other."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.live import replies
from app.live import tasks as live_tasks
from app.live.service import ALLOCATE_JOB, handle_page_event
from app.sandbox.facebook_live import comment_payload
from tests.conftest import RunningSandbox, run_burst
from tests.live.helpers import (
    BASE_TIME,
    comments,
    deliver,
    facebook_shop,
    feed_event,
    live_orders,
    open_live,
    set_stock,
    stock,
)

SKU = "CAP-SKU"


@pytest.fixture
async def shop(api: httpx.AsyncClient, sandbox: RunningSandbox) -> dict[str, Any]:
    connection, _ = await facebook_shop(api, sandbox)
    await set_stock(api, SKU, 3)
    return connection


async def _queued(session_factory: async_sessionmaker[AsyncSession], function: str) -> int:
    """Jobs of `function` asked for by committed transactions and not started yet."""
    async with session_factory() as session:
        count = await session.scalar(
            text(
                "SELECT count(*) FROM job_outbox WHERE function = :f "
                "AND status IN ('pending', 'sent')"
            ),
            {"f": function},
        )
    return int(count or 0)


def _batch(page_id: str, post_id: str, first: int, count: int) -> dict[str, Any]:
    """One delivery holding `count` comments (Meta batches changes into one POST)."""
    events = [
        feed_event(page_id, post_id, "CF K1", buyer=f"b-{n}", at=BASE_TIME + n)
        for n in range(first, first + count)
    ]
    changes = [change for e in events for change in e["entry"][0]["changes"]]
    return {"object": "page", "entry": [{"id": page_id, "time": BASE_TIME, "changes": changes}]}


async def _capture(
    session_factory: async_sessionmaker[AsyncSession],
    connection: dict[str, Any],
    event: dict[str, Any],
) -> None:
    async with session_factory() as session:
        status = await handle_page_event(session, uuid.UUID(connection["id"]), "feed", event)
        assert status == "processed"
        await session.commit()


async def test_capturing_comments_places_nothing_and_asks_for_one_allocation_job(
    api: httpx.AsyncClient,
    shop: dict[str, Any],
    session_factory: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
    settings: Settings,
) -> None:
    live = await open_live(api, shop, [{"code": "K1", "sku": SKU, "price": "50"}])
    # Later comments delivered first: the order they are placed in is the comments' own.
    for first in (10, 0):
        await _capture(session_factory, shop, _batch(shop["shopId"], live["postId"], first, 10))

    async with session_factory() as session:
        pending = await session.scalar(
            text("SELECT count(*) FROM live_comments WHERE pending AND session_id = :s"),
            {"s": live["id"]},
        )
    assert pending == 20
    assert await live_orders(session_factory) == []
    assert (await stock(api, SKU))["reserved"] == 0
    assert await _queued(session_factory, ALLOCATE_JOB) == 1

    await run_burst(settings)

    rows = await comments(api, live)
    assert len(rows) == 20
    ordered = sorted(r["buyerId"] for r in rows if r["outcome"] == "ordered")
    assert ordered == ["b-0", "b-1", "b-2"]
    assert {r["outcome"] for r in rows if r["buyerId"] not in ordered} == {"waitlisted"}
    assert len(await live_orders(session_factory)) == 20
    assert (await stock(api, SKU))["reserved"] == 3


async def test_the_live_sweep_asks_once_for_a_live_with_pending_comments(
    api: httpx.AsyncClient,
    shop: dict[str, Any],
    session_factory: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
    job_context: dict[str, Any],
) -> None:
    live = await open_live(api, shop, [{"code": "K1", "sku": SKU, "price": "50"}])
    async with session_factory() as session:
        # A comment captured a minute ago whose allocation job was lost.
        await session.execute(
            text(
                "INSERT INTO live_comments (session_id, comment_id, buyer_id, message, "
                "commented_at, outcome, pending, changed_at, processed_at) VALUES (:s, 'c-lost', "
                "'b-lost', 'CF K1', now(), 'pending', true, now(), now() - interval '1 minute')"
            ),
            {"s": live["id"]},
        )
        await session.commit()

    assert await live_tasks.sweep_live_comments(job_context) == 1  # type: ignore[arg-type]
    assert await live_tasks.sweep_live_comments(job_context) == 1  # type: ignore[arg-type]

    assert await _queued(session_factory, ALLOCATE_JOB) == 1


async def test_a_failing_reply_blocks_no_other(
    api: httpx.AsyncClient,
    shop: dict[str, Any],
    session_factory: async_sessionmaker[AsyncSession],
    job_context: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    sandbox: RunningSandbox,
) -> None:
    live = await open_live(api, shop, [{"code": "K1", "sku": SKU, "price": "50"}])
    state = sandbox.sandboxes.facebook_live
    page = state.page(shop["shopId"])
    for buyer in ("broken", "fine"):
        # Comments the sandbox knows, so that the private reply to them is accepted.
        comment = state.new_comment(page, live["postId"], "CF K1", buyer_id=buyer)
        await deliver(session_factory, shop, comment_payload(comment))
    render = replies._text_for

    async def failing(session: AsyncSession, order: Any, social: Any) -> str:
        if social.buyer_id == "broken":
            raise AttributeError("a template that cannot be rendered")
        return await render(session, order, social)

    monkeypatch.setattr(replies, "_text_for", failing)

    await replies.send_pending(job_context["app"], uuid.UUID(shop["id"]))

    async with session_factory() as session:
        rows = await session.execute(
            text(
                "SELECT s.buyer_id, r.status FROM social_replies r "
                "JOIN social_orders s ON s.order_id = r.order_id ORDER BY r.id"
            )
        )
        statuses = {row.buyer_id: row.status for row in rows}
    assert statuses == {"broken": "failed", "fine": "sent"}


async def test_removing_a_comment_during_a_burst_gives_its_unit_to_the_next(
    api: httpx.AsyncClient,
    shop: dict[str, Any],
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    live = await open_live(api, shop, [{"code": "K1", "sku": SKU, "price": "50"}])
    batch = _batch(shop["shopId"], live["postId"], 0, 5)
    await _capture(session_factory, shop, batch)
    first = batch["entry"][0]["changes"][0]["value"]
    removal = feed_event(
        shop["shopId"],
        live["postId"],
        "",
        buyer="b-0",
        comment_id=first["comment_id"],
        verb="remove",
        entry_time=BASE_TIME + 60,
    )
    await _capture(session_factory, shop, removal)

    await run_burst(settings)

    outcomes = {r["buyerId"]: r["outcome"] for r in await comments(api, live)}
    assert outcomes == {
        "b-0": "removed",
        "b-1": "ordered",
        "b-2": "ordered",
        "b-3": "ordered",
        "b-4": "waitlisted",
    }
    assert (await stock(api, SKU))["reserved"] == 3
