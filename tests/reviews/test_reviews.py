"""Review sync, list and reply against the sandbox marketplaces (real HTTP, real jobs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.models import MarketplaceReview
from app.reviews.service import REPLY_CLAIM_SECONDS
from app.sandbox.review_seed import SeedReview
from tests.conftest import RunningSandbox, auth_headers
from tests.products.helpers import connect
from tests.reviews.helpers import (
    all_reviews,
    review_book,
    shop_with_products,
    sync_reviews,
)

USER = "seller-1"


async def stored(sessions: async_sessionmaker[AsyncSession], connection_id: str) -> int:
    async with sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(MarketplaceReview)
            .where(MarketplaceReview.connection_id == connection_id)
        )
        return int(count or 0)


def repliable(reviews: list[SeedReview]) -> SeedReview:
    return next(r for r in reviews if r.reply_text is None and not r.reply_closed)


@pytest.mark.parametrize("platform", ["shopee", "lazada"])
async def test_sync_stores_every_review_once_and_a_resync_adds_none(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    settings: Settings,
    redis: ArqRedis,
    session_factory: async_sessionmaker[AsyncSession],
    platform: str,
) -> None:
    connection, credentials = await shop_with_products(api, sandbox, settings, platform)
    book = review_book(sandbox, platform, credentials["shopId"])
    # The busy product has more reviews than one Shopee page (100) or 13 Lazada pages (10).
    assert len(book.of_product(book.reviews[0].product_id)) >= 1
    assert max(len(book.of_product(r.product_id)) for r in book.reviews) > 100

    queued = await sync_reviews(api, redis, settings, connection)
    assert queued == {"connectionId": connection["id"], "status": "queued"}
    assert await stored(session_factory, connection["id"]) == len(book.reviews)

    await sync_reviews(api, redis, settings, connection)
    assert await stored(session_factory, connection["id"]) == len(book.reviews)

    rows = await all_reviews(api, USER, platformCode=platform)
    assert sorted(r["externalReviewId"] for r in rows) == sorted(
        str(r.review_id if platform == "shopee" else 120_000_000_000_000 + r.review_id)
        for r in book.reviews
    )
    answered = {str(r.text) for r in book.reviews if r.reply_text}
    assert answered and all(r["reply"]["text"] for r in rows if r["reply"])
    assert sum(1 for r in rows if r["reply"]) == sum(1 for r in book.reviews if r.reply_text)


async def test_list_shows_masked_buyer_product_and_sku_newest_first(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    settings: Settings,
    redis: ArqRedis,
) -> None:
    connection, credentials = await shop_with_products(api, sandbox, settings, "shopee")
    await sync_reviews(api, redis, settings, connection)
    book = review_book(sandbox, "shopee", credentials["shopId"])
    shop = sandbox.sandboxes.shopee.shops[int(credentials["shopId"])]

    rows = await all_reviews(api, USER)
    assert len(rows) == len(book.reviews)
    keys = [(r["createdAt"], r["id"]) for r in rows]
    assert keys == sorted(keys, reverse=True) and len(set(keys)) == len(keys)

    newest = book.reviews[0]
    row = next(r for r in rows if r["externalReviewId"] == str(newest.review_id))
    product = next(p for p in shop.seeded.products if p.product_id == newest.product_id)
    variation = next(v for v in product.variations if v.variation_id == newest.variation_id)
    assert row["rating"] == newest.rating and row["text"] == newest.text
    assert row["buyerName"] == f"{newest.buyer[0]}****{newest.buyer[-1]}"
    assert row["productName"] == product.name
    assert row["sku"] == variation.sku  # linked to the master SKU of the same name
    assert row["connectionId"] == connection["id"] and row["platformCode"] == "shopee"


async def test_list_filters_by_rating_and_sku(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    settings: Settings,
    redis: ArqRedis,
) -> None:
    connection, credentials = await shop_with_products(api, sandbox, settings, "shopee")
    await sync_reviews(api, redis, settings, connection)
    book = review_book(sandbox, "shopee", credentials["shopId"])
    shop = sandbox.sandboxes.shopee.shops[int(credentials["shopId"])]

    five = await all_reviews(api, USER, rating="5")
    assert len(five) == sum(1 for r in book.reviews if r.rating == 5)
    assert {r["rating"] for r in five} == {5}

    sku_of = {v.variation_id: v.sku for p in shop.seeded.products for v in p.variations}
    target = sku_of[book.reviews[0].variation_id]
    by_sku = await all_reviews(api, USER, sku=target)
    assert len(by_sku) == sum(1 for r in book.reviews if sku_of[r.variation_id] == target)
    assert {r["sku"] for r in by_sku} == {target}
    assert await all_reviews(api, USER, platformCode="lazada") == []


async def test_another_users_reviews_are_not_listed_or_replied(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    settings: Settings,
    redis: ArqRedis,
) -> None:
    connection, _ = await shop_with_products(api, sandbox, settings, "shopee")
    await sync_reviews(api, redis, settings, connection)
    review_id = (await all_reviews(api, USER))[0]["id"]
    assert await all_reviews(api, "seller-2") == []
    response = await api.post(
        f"/api/marketplace/reviews/{review_id}/reply",
        json={"userId": "seller-2", "text": "hi"},
        headers=auth_headers("seller-2"),
    )
    assert response.status_code == 404
    response = await api.get(
        "/api/marketplace/reviews", params={"userId": USER}, headers=auth_headers("seller-2")
    )
    assert response.status_code == 403


async def reply(api: httpx.AsyncClient, review_id: int, text: str) -> httpx.Response:
    return await api.post(
        f"/api/marketplace/reviews/{review_id}/reply",
        json={"userId": USER, "text": text},
        headers=auth_headers(USER),
    )


async def row_of(api: httpx.AsyncClient, external_id: str) -> dict[str, Any]:
    return next(r for r in await all_reviews(api, USER) if r["externalReviewId"] == external_id)


@pytest.mark.parametrize("platform", ["shopee", "lazada"])
async def test_reply_reaches_the_platform_once(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    settings: Settings,
    redis: ArqRedis,
    platform: str,
) -> None:
    connection, credentials = await shop_with_products(api, sandbox, settings, platform)
    await sync_reviews(api, redis, settings, connection)
    book = review_book(sandbox, platform, credentials["shopId"])
    target = repliable(book.reviews)
    external = str(
        target.review_id if platform == "shopee" else 120_000_000_000_000 + target.review_id
    )
    row = await row_of(api, external)
    assert row["reply"] is None

    response = await reply(api, row["id"], "  ขอบคุณที่อุดหนุนนะคะ  ")
    assert response.status_code == 200, response.text
    body = response.json()["data"]
    assert body["reply"]["text"] == "ขอบคุณที่อุดหนุนนะคะ" and body["reply"]["at"]
    assert target.reply_text == "ขอบคุณที่อุดหนุนนะคะ"  # the platform has it

    again = await reply(api, row["id"], "อีกครั้ง")
    assert again.status_code == 409 and again.json()["error"]["code"] == "reply_exists"
    assert target.reply_text == "ขอบคุณที่อุดหนุนนะคะ"

    # A later sync keeps the reply (and the platform now shows it too).
    await sync_reviews(api, redis, settings, connection)
    assert (await row_of(api, external))["reply"]["text"] == "ขอบคุณที่อุดหนุนนะคะ"


@pytest.mark.parametrize(
    "platform, words",
    [
        ("shopee", "You has replied this comment already."),
        ("lazada", "already been replied to"),
    ],
)
async def test_a_reply_the_platform_refuses_is_409_in_its_words(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    settings: Settings,
    redis: ArqRedis,
    session_factory: async_sessionmaker[AsyncSession],
    platform: str,
    words: str,
) -> None:
    connection, credentials = await shop_with_products(api, sandbox, settings, platform)
    await sync_reviews(api, redis, settings, connection)
    book = review_book(sandbox, platform, credentials["shopId"])
    target = repliable(book.reviews)
    external = str(
        target.review_id if platform == "shopee" else 120_000_000_000_000 + target.review_id
    )
    # The seller answered in Seller Center after our last sync.
    book.reply(target, "ตอบจาก Seller Center")
    row = await row_of(api, external)

    response = await reply(api, row["id"], "ขอบคุณค่ะ")
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "reply_exists" and words in error["message"]
    assert target.reply_text == "ตอบจาก Seller Center"
    async with session_factory() as session:
        review = await session.get(MarketplaceReview, row["id"])
        assert review is not None and review.reply_claimed_at is None and review.reply_text is None


async def test_lazada_reply_after_its_period_is_refused_before_any_call(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    settings: Settings,
    redis: ArqRedis,
) -> None:
    connection, credentials = await shop_with_products(api, sandbox, settings, "lazada")
    await sync_reviews(api, redis, settings, connection)
    book = review_book(sandbox, "lazada", credentials["shopId"])
    closed = next(r for r in book.reviews if r.reply_closed and r.reply_text is None)
    row = await row_of(api, str(120_000_000_000_000 + closed.review_id))
    assert row["canReply"] is False
    calls = sandbox.sandboxes.lazada.calls["/review/seller/reply/add"]
    response = await reply(api, row["id"], "ขอบคุณค่ะ")
    assert response.status_code == 409 and response.json()["error"]["code"] == "reply_not_allowed"
    assert sandbox.sandboxes.lazada.calls["/review/seller/reply/add"] == calls
    assert closed.reply_text is None


@pytest.mark.parametrize("text", ["", "   ", "ก" * 501])
async def test_reply_text_is_validated_naming_the_field(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    settings: Settings,
    redis: ArqRedis,
    text: str,
) -> None:
    connection, credentials = await shop_with_products(api, sandbox, settings, "shopee")
    await sync_reviews(api, redis, settings, connection)
    book = review_book(sandbox, "shopee", credentials["shopId"])
    target = repliable(book.reviews)
    row = await row_of(api, str(target.review_id))
    response = await reply(api, row["id"], text)
    assert response.status_code == 422
    fields = [f["field"] for f in response.json()["error"]["fields"]]
    assert any(f.endswith("text") for f in fields), fields
    assert target.reply_text is None


async def test_facebook_has_no_reviews_to_sync(
    api: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    connection, _ = await connect(api, sandbox, "facebook", USER)
    response = await api.post(
        "/api/marketplace/sync-reviews",
        json={"connectionId": connection["id"], "userId": USER},
        headers=auth_headers(USER),
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "reviews_not_supported"


async def test_bad_list_parameters_are_422(api: httpx.AsyncClient) -> None:
    for params in ({"rating": "6"}, {"cursor": "not-a-cursor"}, {"limit": "0"}):
        response = await api.get(
            "/api/marketplace/reviews",
            params={"userId": USER, **params},
            headers=auth_headers(USER),
        )
        assert response.status_code == 422, params


async def test_a_reply_being_sent_blocks_a_second_one_until_its_claim_expires(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    settings: Settings,
    redis: ArqRedis,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, credentials = await shop_with_products(api, sandbox, settings, "shopee")
    await sync_reviews(api, redis, settings, connection)
    target = repliable(review_book(sandbox, "shopee", credentials["shopId"]).reviews)
    row = await row_of(api, str(target.review_id))
    now = datetime.now(UTC)
    await set_claim(session_factory, row["id"], now)
    calls = sandbox.sandboxes.shopee.calls["/api/v2/product/reply_comment"]

    response = await reply(api, row["id"], "ขอบคุณค่ะ")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "reply_in_progress"
    assert sandbox.sandboxes.shopee.calls["/api/v2/product/reply_comment"] == calls

    # A request that died mid-call leaves its claim; after REPLY_CLAIM_SECONDS it is retried.
    await set_claim(session_factory, row["id"], now - timedelta(seconds=REPLY_CLAIM_SECONDS + 1))
    response = await reply(api, row["id"], "ขอบคุณค่ะ")
    assert response.status_code == 200, response.text
    assert target.reply_text == "ขอบคุณค่ะ"


async def test_an_unreachable_platform_is_502_and_the_reply_can_be_retried(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    settings: Settings,
    redis: ArqRedis,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, credentials = await shop_with_products(api, sandbox, settings, "lazada")
    await sync_reviews(api, redis, settings, connection)
    target = repliable(review_book(sandbox, "lazada", credentials["shopId"]).reviews)
    row = await row_of(api, str(120_000_000_000_000 + target.review_id))
    sandbox.sandboxes.lazada.faults.server_error_rate = 1.0

    response = await reply(api, row["id"], "ขอบคุณค่ะ")
    assert response.status_code == 502, response.text
    assert target.reply_text is None
    async with session_factory() as session:
        review = await session.get(MarketplaceReview, row["id"])
        assert review is not None and review.reply_claimed_at is None

    sandbox.sandboxes.lazada.faults.server_error_rate = 0.0
    response = await reply(api, row["id"], "ขอบคุณค่ะ")
    assert response.status_code == 200, response.text
    assert target.reply_text == "ขอบคุณค่ะ"


async def test_a_reply_with_an_expired_token_refreshes_and_is_sent(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    settings: Settings,
    redis: ArqRedis,
) -> None:
    connection, credentials = await shop_with_products(api, sandbox, settings, "shopee")
    await sync_reviews(api, redis, settings, connection)
    target = repliable(review_book(sandbox, "shopee", credentials["shopId"]).reviews)
    row = await row_of(api, str(target.review_id))
    sandbox.sandboxes.shopee.faults.expire_tokens_next = 1

    response = await reply(api, row["id"], "ขอบคุณค่ะ")
    assert response.status_code == 200, response.text
    assert target.reply_text == "ขอบคุณค่ะ"
    # The refreshed pair was stored: the next sync works with it.
    await sync_reviews(api, redis, settings, connection)
    assert (await row_of(api, str(target.review_id)))["reply"]["text"] == "ขอบคุณค่ะ"


async def set_claim(
    sessions: async_sessionmaker[AsyncSession], review_id: int, at: datetime
) -> None:
    async with sessions() as session:
        await session.execute(
            update(MarketplaceReview)
            .where(MarketplaceReview.id == review_id)
            .values(reply_claimed_at=at)
        )
        await session.commit()
