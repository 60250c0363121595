"""The sandboxes enforce the platforms' review rules (real HTTP, the real clients)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from arq.connections import ArqRedis

from app.platforms.base import ClientConfig, MemoryTokenStore, ReviewRef, ReviewReplyRefused
from app.platforms.errors import PermanentError
from app.platforms.lazada import reviews as lazada_reviews
from app.platforms.lazada.client import LazadaClient
from app.platforms.shopee import reviews as shopee_reviews
from app.platforms.shopee.client import ShopeeClient
from app.platforms.types import Credentials
from app.reviews.service import sync_job_key
from app.reviews.tasks import schedule_review_syncs
from app.sandbox.review_seed import ReviewBook
from app.sandbox.shopee_reviews import MAX_PER_QUERY
from tests.conftest import TEST_TUNING, RunningSandbox, create_sandbox_shop
from tests.products.helpers import connect
from tests.reviews.helpers import is_queued, queued, review_book


def credentials(shop: dict[str, str]) -> Credentials:
    return Credentials(
        shop_id=shop["shopId"],
        api_key=shop["apiKey"],
        api_secret=shop["apiSecret"],
        access_token=shop["accessToken"],
        refresh_token=shop.get("refreshToken"),
    )


async def lazada_client(sandbox: RunningSandbox) -> tuple[LazadaClient, dict[str, str]]:
    shop = await create_sandbox_shop(sandbox, "lazada", productCount=4)
    creds = credentials(shop)
    config = ClientConfig(base_url=sandbox.settings["LAZADA_BASE_URL"], tuning=TEST_TUNING)
    return LazadaClient(creds, config, token_store=MemoryTokenStore(creds)), shop


async def shopee_client(sandbox: RunningSandbox) -> tuple[ShopeeClient, dict[str, str]]:
    shop = await create_sandbox_shop(sandbox, "shopee", productCount=4)
    creds = credentials(shop)
    config = ClientConfig(base_url=sandbox.settings["SHOPEE_BASE_URL"], tuning=TEST_TUNING)
    return ShopeeClient(creds, config, token_store=MemoryTokenStore(creds)), shop


SINCE = datetime(2020, 1, 1, tzinfo=UTC)


def ms(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1000))


@pytest.mark.parametrize(
    "span_days, start_days_ago, current, code",
    [
        (8, 10, "1", "PARAMS_VALIDATE_ERROR"),  # more than 7 days at once
        (3, 100, "1", "STARTTIME_OVER_LIMIT"),  # older than 90 days
        (3, 5, "51", "CURRENT_ABOVE_LIMIT"),
    ],
)
async def test_lazada_history_refuses_what_lazada_refuses(
    sandbox: RunningSandbox, span_days: int, start_days_ago: int, current: str, code: str
) -> None:
    client, _ = await lazada_client(sandbox)
    start = datetime.now(UTC) - timedelta(days=start_days_ago)
    params = {
        "item_id": "100000",
        "start_time": ms(start),
        "end_time": ms(start + timedelta(days=span_days)),
        "current": current,
    }
    async with client:
        with pytest.raises(PermanentError) as refused:
            await lazada_reviews._call(client, lazada_reviews.HISTORY_LIST, params)
    assert refused.value.code == code


async def test_lazada_details_take_at_most_ten_ids(sandbox: RunningSandbox) -> None:
    client, _ = await lazada_client(sandbox)
    ids = "[" + ",".join(str(120_000_000_000_000 + i) for i in range(11)) + "]"
    async with client:
        with pytest.raises(PermanentError):
            await lazada_reviews._call(client, lazada_reviews.REVIEW_LIST, {"id_list": ids})


async def test_lazada_refuses_a_reply_over_500_characters(sandbox: RunningSandbox) -> None:
    client, shop = await lazada_client(sandbox)
    target = next(
        r
        for r in review_book(sandbox, "lazada", shop["shopId"]).reviews
        if r.reply_text is None and not r.reply_closed
    )
    ref = ReviewRef(str(120_000_000_000_000 + target.review_id), str(target.product_id))
    async with client:
        with pytest.raises(ReviewReplyRefused) as refused:
            await client.reply_review(ref, "ก" * 501)
    assert refused.value.code == "REPLY_CONTENT_TOO_LONG"
    assert target.reply_text is None


async def test_shopee_refuses_bad_paging_and_long_replies(sandbox: RunningSandbox) -> None:
    client, shop = await shopee_client(sandbox)
    target = next(
        r for r in review_book(sandbox, "shopee", shop["shopId"]).reviews if r.reply_text is None
    )
    async with client:
        with pytest.raises(PermanentError) as refused:
            await client._shop_call(
                "GET", shopee_reviews.GET_COMMENT, params={"cursor": "", "page_size": 101}
            )
        assert refused.value.code == "error_param"
        with pytest.raises(ReviewReplyRefused) as too_long:
            await client.reply_review(ReviewRef(str(target.review_id), "x"), "ก" * 501)
        assert too_long.value.code == "product.comment_length_invalid"
        with pytest.raises(ReviewReplyRefused) as missing:
            await client.reply_review(ReviewRef("1", "x"), "ขอบคุณค่ะ")
        assert missing.value.code == "product.error_not_exist"
    assert target.reply_text is None


async def test_shopee_serves_at_most_500_comments_of_an_item(sandbox: RunningSandbox) -> None:
    client, shop = await shopee_client(sandbox)
    seeded = sandbox.sandboxes.shopee.shops[int(shop["shopId"])]
    vars(seeded)["_review_book"] = ReviewBook.seeded(seeded.seeded, busy_reviews=620)
    events: list[tuple[str, Any]] = []
    client.events = lambda name, data: events.append((name, data))
    busy = str(seeded.seeded.products[0].product_id)
    async with client:
        reviews = [r async for page in client.iter_reviews([busy], SINCE) for r in page]
    assert len(reviews) == MAX_PER_QUERY == 500
    assert len({r.external_review_id for r in reviews}) == 500
    assert ("review_cap", {"itemId": busy}) in events


async def test_the_daily_schedule_queues_shopee_and_lazada_shops_only(
    api: Any, sandbox: RunningSandbox, job_context: dict[str, Any], redis: ArqRedis
) -> None:
    shopee, _ = await connect(api, sandbox, "shopee", "seller-1")
    lazada, _ = await connect(api, sandbox, "lazada", "seller-1")
    facebook, _ = await connect(api, sandbox, "facebook", "seller-1")
    assert await schedule_review_syncs(job_context) == 2  # type: ignore[arg-type]
    for connection in (shopee, lazada):
        await queued(redis, sync_job_key(connection["id"]))
    assert not await is_queued(redis, sync_job_key(facebook["id"]))
