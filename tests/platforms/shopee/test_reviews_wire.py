"""Shopee review calls on the wire (get_comment, reply_comment), against respx."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx

from app.platforms.base import NormalizedReview, ReviewRef, ReviewReplyRefused
from app.platforms.errors import PermanentError
from tests.platforms.shopee.test_wire import (
    ACCESS,
    BASE,
    PARTNER_ID,
    PARTNER_KEY,
    SHOP_ID,
    make_client,
    query,
)

GET_COMMENT = f"{BASE}/api/v2/product/get_comment"
REPLY_COMMENT = f"{BASE}/api/v2/product/reply_comment"
SINCE = datetime(2026, 1, 1, tzinfo=UTC)


def envelope(response: dict[str, Any] | None = None, **top: Any) -> httpx.Response:
    body: dict[str, Any] = {"request_id": "r-1", "error": "", "message": "", **top}
    if response is not None:
        body["response"] = response
    return httpx.Response(200, json=body)


def comment(comment_id: int, **fields: Any) -> dict[str, Any]:
    return {
        "comment_id": comment_id,
        "comment": "ของดีมาก",
        "buyer_username": "somchai.j",
        "item_id": 16509872,
        "model_id": 0,
        "model_id_list": [987],
        "order_sn": "200922CTK2J6KN",
        "rating_star": 4,
        "create_time": 1_767_000_000,
        **fields,
    }


async def collect(client: Any, item_ids: list[str]) -> list[NormalizedReview]:
    return [review async for page in client.iter_reviews(item_ids, SINCE) for review in page]


@respx.mock
async def test_get_comment_is_signed_and_pages_by_cursor() -> None:
    route = respx.get(GET_COMMENT).mock(
        side_effect=[
            envelope({"item_comment_list": [comment(1)], "more": True, "next_cursor": "20"}),
            envelope({"item_comment_list": [comment(2)], "more": False, "next_cursor": ""}),
        ]
    )
    async with make_client() as client:
        reviews = await collect(client, ["16509872"])
    assert [r.external_review_id for r in reviews] == ["1", "2"]
    first, second = (query(call.request) for call in route.calls)
    assert first["item_id"] == "16509872" and first["page_size"] == "100"
    assert first["cursor"] == "" and second["cursor"] == "20"
    path, ts = "/api/v2/product/get_comment", first["timestamp"]
    base = f"{PARTNER_ID}{path}{ts}{ACCESS}{SHOP_ID}".encode()
    assert first["sign"] == hmac.new(PARTNER_KEY.encode(), base, hashlib.sha256).hexdigest()
    assert first["shop_id"] == str(SHOP_ID) and first["access_token"] == ACCESS


@respx.mock
async def test_comment_is_normalized_with_its_reply_under_either_name() -> None:
    respx.get(GET_COMMENT).mock(
        return_value=envelope(
            {
                "item_comment_list": [
                    comment(1, comment_reply={"reply": "ขอบคุณค่ะ", "create_time": 1_767_000_500}),
                    # The reference's own sample names the reply `cmt_reply`, without a time.
                    comment(2, cmt_reply={"reply": "Thank you", "hidden": False}),
                    comment(3, comment_reply={"reply": "", "hidden": False}),
                ],
                "more": False,
                "next_cursor": "",
            }
        )
    )
    async with make_client() as client:
        one, two, three = await collect(client, ["16509872"])
    assert one.rating == 4 and one.text == "ของดีมาก" and one.buyer_name == "somchai.j"
    assert one.external_product_id == "16509872" and one.external_variation_id == "987"
    assert one.external_order_id == "200922CTK2J6KN"
    assert one.created_at == datetime.fromtimestamp(1_767_000_000, UTC)
    assert one.reply is not None and one.reply.text == "ขอบคุณค่ะ"
    assert one.reply.at == datetime.fromtimestamp(1_767_000_500, UTC)
    assert two.reply is not None and two.reply.text == "Thank you" and two.reply.at is None
    assert three.reply is None


@respx.mock
async def test_the_500_comment_cap_ends_the_item_without_failing() -> None:
    route = respx.get(GET_COMMENT).mock(
        return_value=envelope({"item_comment_list": [comment(1)], "more": True, "next_cursor": ""})
    )
    events: list[tuple[str, Any]] = []
    async with make_client(events) as client:
        reviews = await collect(client, ["16509872"])
    assert len(reviews) == 1 and route.call_count == 1
    assert ("review_cap", {"itemId": "16509872"}) in events


@respx.mock
async def test_a_deleted_item_is_skipped_and_the_next_one_read() -> None:
    route = respx.get(GET_COMMENT).mock(
        side_effect=[
            envelope(error="product.item_not_exist", message="Item (ID 1) is not exist."),
            envelope({"item_comment_list": [comment(7)], "more": False, "next_cursor": ""}),
        ]
    )
    async with make_client() as client:
        reviews = await collect(client, ["1", "16509872"])
    assert [r.external_review_id for r in reviews] == ["7"]
    assert route.call_count == 2


@respx.mock
async def test_a_repeated_cursor_is_an_error_not_a_loop() -> None:
    respx.get(GET_COMMENT).mock(
        return_value=envelope({"item_comment_list": [comment(1)], "more": True, "next_cursor": "5"})
    )
    async with make_client() as client:
        with pytest.raises(PermanentError):
            await collect(client, ["16509872"])


@respx.mock
async def test_reply_comment_sends_one_comment_in_the_batch() -> None:
    route = respx.post(REPLY_COMMENT).mock(
        return_value=envelope({"result_list": [{"comment_id": 1540927}]})
    )
    async with make_client() as client:
        await client.reply_review(ReviewRef("1540927", "16509872"), "ขอบคุณที่อุดหนุนค่ะ")
    request = route.calls.last.request
    assert json.loads(request.content) == {
        "comment_list": [{"comment_id": 1540927, "comment": "ขอบคุณที่อุดหนุนค่ะ"}]
    }
    assert query(request)["partner_id"] == str(PARTNER_ID)


@respx.mock
@pytest.mark.parametrize(
    "answer, code, words",
    [
        (
            envelope(
                error="product.duplicate_request", message="You has replied this comment already."
            ),
            "product.duplicate_request",
            "replied this comment already",
        ),
        (
            envelope(
                {
                    "result_list": [
                        {
                            "comment_id": 1540927,
                            "fail_error": "product.error_not_exist",
                            "fail_message": "The Comment you replied does not exist.",
                        }
                    ]
                }
            ),
            "product.error_not_exist",
            "does not exist",
        ),
    ],
)
async def test_a_refused_reply_carries_shopees_words(
    answer: httpx.Response, code: str, words: str
) -> None:
    respx.post(REPLY_COMMENT).mock(return_value=answer)
    async with make_client() as client:
        with pytest.raises(ReviewReplyRefused) as refused:
            await client.reply_review(ReviewRef("1540927", "16509872"), "ขอบคุณค่ะ")
    assert refused.value.code == code and words in refused.value.message


@respx.mock
async def test_a_reply_shopee_does_not_confirm_is_not_taken_as_sent() -> None:
    respx.post(REPLY_COMMENT).mock(return_value=envelope({"result_list": []}))
    async with make_client() as client:
        with pytest.raises(PermanentError) as failed:
            await client.reply_review(ReviewRef("1540927", "16509872"), "ขอบคุณค่ะ")
    assert not isinstance(failed.value, ReviewReplyRefused)
