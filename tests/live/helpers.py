from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.live.service import LiveBusy, allocate_session, handle_page_event
from tests.conftest import RunningSandbox, auth_headers
from tests.products.helpers import connect

USER = "seller-1"
HEADERS = auth_headers(USER)
_comment_ids = itertools.count(1)
BASE_TIME = 1_790_000_000


async def facebook_shop(
    api: httpx.AsyncClient, sandbox: RunningSandbox
) -> tuple[dict[str, Any], dict[str, str]]:
    return await connect(api, sandbox, "facebook", USER)


async def set_stock(api: httpx.AsyncClient, sku: str, available: int) -> None:
    response = await api.put(
        f"/api/marketplace/inventory/{sku}",
        json={"userId": USER, "available": available},
        headers=HEADERS,
    )
    assert response.status_code == 200, response.text


async def stock(api: httpx.AsyncClient, sku: str) -> dict[str, Any]:
    response = await api.get(
        f"/api/marketplace/inventory/{sku}", params={"userId": USER}, headers=HEADERS
    )
    assert response.status_code == 200, response.text
    row: dict[str, Any] = response.json()["data"]
    return row


async def open_live(
    api: httpx.AsyncClient,
    connection: dict[str, Any],
    products: list[dict[str, Any]],
    post_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    response = await api.post(
        "/api/marketplace/live-sessions",
        json={
            "userId": USER,
            "connectionId": connection["id"],
            "postId": post_id or f"{connection['shopId']}_{uuid.uuid4().int % 10**12}",
            "products": products,
            **extra,
        },
        headers=HEADERS,
    )
    assert response.status_code == 201, response.text
    live: dict[str, Any] = response.json()["data"]
    return live


def feed_event(
    page_id: str,
    post_id: str,
    message: str,
    *,
    buyer: str = "buyer-1",
    name: str | None = None,
    at: int = BASE_TIME,
    comment_id: str | None = None,
    verb: str = "add",
    entry_time: int | None = None,
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "item": "comment",
        "verb": verb,
        "comment_id": comment_id or f"{post_id}_{next(_comment_ids)}",
        "post_id": post_id,
        "parent_id": post_id,
        "from": {"id": buyer, "name": name or f"Buyer {buyer}"},
        "created_time": at,
    }
    if verb != "remove":
        value["message"] = message
    return {
        "object": "page",
        "entry": [
            {
                "id": page_id,
                "time": entry_time if entry_time is not None else at,
                "changes": [{"field": "feed", "value": value}],
            }
        ],
    }


def comment_id_of(event: dict[str, Any]) -> str:
    value: str = event["entry"][0]["changes"][0]["value"]["comment_id"]
    return value


async def deliver(
    session_factory: async_sessionmaker[AsyncSession],
    connection: dict[str, Any],
    event: dict[str, Any],
) -> str:
    """One Page event processed as the webhook job does (in its own transaction, capturing
    its comments), then the allocation job it asked for, as a worker runs it."""
    async with session_factory() as session:
        status = await handle_page_event(session, uuid.UUID(connection["id"]), "feed", event)
        await session.commit()
    await allocate_pending_comments(session_factory)
    return status


async def allocate_pending_comments(session_factory: async_sessionmaker[AsyncSession]) -> int:
    """What the allocation jobs do: every live with captured comments not yet placed (a job
    finding the live busy is retried, as arq retries it)."""
    async with session_factory() as session:
        pending = text("SELECT DISTINCT session_id FROM live_comments WHERE pending")
        lives = list(await session.scalars(pending))
    placed = 0
    for live in lives:
        while True:
            try:
                placed += await allocate_session(session_factory, live)
                break
            except LiveBusy:
                await asyncio.sleep(0.01)
    return placed


async def order(api: httpx.AsyncClient, order_id: int) -> dict[str, Any]:
    response = await api.get(f"/api/marketplace/orders/{order_id}", headers=HEADERS)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()["data"]
    return body


async def comments(api: httpx.AsyncClient, live: dict[str, Any]) -> list[dict[str, Any]]:
    response = await api.get(
        f"/api/marketplace/live-sessions/{live['id']}/comments",
        params={"userId": USER},
        headers=HEADERS,
    )
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["data"]
    return rows


async def live_orders(session_factory: async_sessionmaker[AsyncSession]) -> list[Any]:
    async with session_factory() as session:
        rows = await session.execute(
            text(
                "SELECT id, buyer_external_id, status FROM marketplace_orders "
                "WHERE channel <> 'marketplace' ORDER BY id"
            )
        )
        return list(rows)


def now() -> int:
    return int(time.time())
