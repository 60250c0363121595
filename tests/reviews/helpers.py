"""Shops in the sandboxes, connected, their products and reviews synced through real jobs."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from arq.connections import ArqRedis

from app.config import Settings
from app.reviews.service import sync_job_key
from app.sandbox.review_seed import ReviewBook, book_for
from tests.conftest import RunningSandbox, auth_headers, run_burst
from tests.products.helpers import connect


async def is_queued(redis: ArqRedis, dedupe_key: str) -> bool:
    """A job `function:argument` (the review sync's dedupe key) is in arq's queue."""
    function, _, argument = dedupe_key.partition(":")
    return any(
        job.function == function and list(job.args)[:1] == [argument]
        for job in await redis.queued_jobs()
    )


async def queued(redis: ArqRedis, dedupe_key: str) -> None:
    """The outbox relay hands committed jobs to arq right after the commit: wait for it."""
    for _ in range(200):
        if await is_queued(redis, dedupe_key):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {dedupe_key} was never queued")


async def shop_with_products(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    settings: Settings,
    platform: str,
    user: str = "seller-1",
) -> tuple[dict[str, Any], dict[str, str]]:
    connection, credentials = await connect(api, sandbox, platform, user, productCount=8)
    response = await api.post(
        "/api/marketplace/sync-products",
        json={"connectionId": connection["id"], "userId": user},
        headers=auth_headers(user),
    )
    assert response.status_code in (200, 202), response.text
    await run_burst(settings)
    return connection, credentials


async def sync_reviews(
    api: httpx.AsyncClient, redis: ArqRedis, settings: Settings, connection: dict[str, Any]
) -> dict[str, Any]:
    user = connection["userId"]
    response = await api.post(
        "/api/marketplace/sync-reviews",
        json={"connectionId": connection["id"], "userId": user},
        headers=auth_headers(user),
    )
    assert response.status_code == 202, response.text
    await queued(redis, sync_job_key(connection["id"]))
    await run_burst(settings)
    body: dict[str, Any] = response.json()["data"]
    return body


def review_book(sandbox: RunningSandbox, platform: str, shop_id: str) -> ReviewBook:
    if platform == "shopee":
        shop: Any = sandbox.sandboxes.shopee.shops[int(shop_id)]
        return book_for(shop, shop.seeded)
    lz = sandbox.sandboxes.lazada.shops[shop_id]
    return book_for(lz, lz.shop)


async def all_reviews(api: httpx.AsyncClient, user: str, **params: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {"userId": user, "limit": "40", **params}
        if cursor:
            query["cursor"] = cursor
        response = await api.get(
            "/api/marketplace/reviews", params=query, headers=auth_headers(user)
        )
        assert response.status_code == 200, response.text
        body = response.json()
        rows += body["data"]
        cursor = body["pagination"]["nextCursor"]
        if not cursor:
            return rows
