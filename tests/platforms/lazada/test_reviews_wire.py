"""Lazada review calls on the wire (history list, list v2, reply), against respx."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx

from app.platforms.base import NormalizedReview, ReviewRef, ReviewReplyRefused
from app.platforms.errors import PermanentError, RateLimitedError
from app.platforms.lazada.auth import sign
from tests.platforms.lazada.test_wire import API, SECRET, make_client, ok

HISTORY = f"{API}/review/seller/history/list"
DETAILS = f"{API}/review/seller/list/v2"
REPLY = f"{API}/review/seller/reply/add"


def params(request: httpx.Request) -> dict[str, str]:
    return dict(request.url.params)


def review(review_id: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": str(review_id),
        "product_id": "2419854443",
        "order_id": "1000000000",
        "review_type": "PRODUCT_REVIEW",
        "review_content": "ส่งไว ของดี",
        "ratings": {"product_rating": "4", "overall_rating": "2", "seller_rating": "5"},
        "create_time": "1658235676532",
        "submit_time": "1658235676532",
        "seller_reply": "",
        "can_reply": "true",
        **fields,
    }


async def collect(client: Any, since: datetime) -> list[NormalizedReview]:
    return [r async for page in client.iter_reviews(["2419854443"], since) for r in page]


@respx.mock
async def test_history_is_read_in_signed_windows_of_at_most_seven_days() -> None:
    history = respx.get(HISTORY).mock(
        return_value=ok({"current": "1", "total": "0", "page_size": "10", "id_list": []})
    )
    client, _ = make_client()
    since = datetime.now(UTC) - timedelta(days=20)
    async with client:
        assert await collect(client, since) == []
    windows = [params(call.request) for call in history.calls]
    assert len(windows) == 3  # 20 days in windows of 7
    for window in windows:
        span = int(window["end_time"]) - int(window["start_time"])
        assert 0 < span < 7 * 86_400_000
        assert window["item_id"] == "2419854443" and window["current"] == "1"
    # Contiguous: each window starts one millisecond after the previous one ends.
    for earlier, later in itertools.pairwise(windows):
        assert int(later["start_time"]) == int(earlier["end_time"]) + 1
    request = history.calls[0].request
    signed = {k: v for k, v in params(request).items() if k != "sign"}
    assert params(request)["sign"] == sign("/review/seller/history/list", signed, SECRET)


@respx.mock
async def test_history_older_than_ninety_days_is_never_asked() -> None:
    history = respx.get(HISTORY).mock(
        return_value=ok({"current": "1", "total": "0", "page_size": "10", "id_list": []})
    )
    client, _ = make_client()
    async with client:
        await collect(client, datetime.now(UTC) - timedelta(days=400))
    first = min(int(params(c.request)["start_time"]) for c in history.calls)
    oldest = datetime.now(UTC) - timedelta(days=90, minutes=1)
    assert first >= int(oldest.timestamp() * 1000)
    assert len(history.calls) == 13  # ceil(90 / 7)


@respx.mock
async def test_pages_are_followed_and_details_asked_ten_ids_at_a_time() -> None:
    ids = list(range(1, 13))
    history = respx.get(HISTORY).mock(
        side_effect=[
            ok({"current": "1", "total": "12", "page_size": "10", "id_list": ids[:10]}),
            ok({"current": "2", "total": "12", "page_size": "10", "id_list": ids[10:]}),
        ]
    )
    details = respx.get(DETAILS).mock(
        side_effect=lambda request: ok(
            {
                "review_list": [
                    review(int(i)) for i in request.url.params["id_list"].strip("[]").split(",")
                ],
                "outdated_reviews": [],
            }
        )
    )
    client, _ = make_client()
    async with client:
        reviews = await collect(client, datetime.now(UTC) - timedelta(days=3))
    assert [r.external_review_id for r in reviews] == [str(i) for i in ids]
    assert [params(c.request)["current"] for c in history.calls] == ["1", "2"]
    assert [params(c.request)["id_list"] for c in details.calls] == [
        "[1,2,3,4,5,6,7,8,9,10]",
        "[11,12]",
    ]


@respx.mock
async def test_a_window_with_more_than_fifty_pages_is_halved() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        span = int(request.url.params["end_time"]) - int(request.url.params["start_time"])
        total = 600 if span > 2 * 86_400_000 else 0  # only the full window is too busy
        return ok({"current": "1", "total": str(total), "page_size": "10", "id_list": []})

    history = respx.get(HISTORY).mock(side_effect=answer)
    client, _ = make_client()
    async with client:
        await collect(client, datetime.now(UTC) - timedelta(days=6))
    spans = [
        int(params(c.request)["end_time"]) - int(params(c.request)["start_time"])
        for c in history.calls
    ]
    assert max(spans) > 2 * 86_400_000 and min(spans) <= 2 * 86_400_000
    assert all(params(c.request)["current"] == "1" for c in history.calls)


@respx.mock
async def test_review_is_normalized() -> None:
    respx.get(HISTORY).mock(
        return_value=ok({"current": "1", "total": "2", "page_size": "10", "id_list": [5, 6]})
    )
    respx.get(DETAILS).mock(
        return_value=ok(
            {
                "review_list": [
                    review(5, seller_reply="ขอบคุณค่ะ", can_reply="false"),
                    review(6, ratings={}, review_type="FOLLOW_UP_REVIEW"),
                ],
                "outdated_reviews": [7],
            }
        )
    )
    client, _ = make_client()
    async with client:
        five, six = await collect(client, datetime.now(UTC) - timedelta(days=1))
    assert five.rating == 4  # the product's stars, not the overall rating
    assert five.text == "ส่งไว ของดี" and five.external_order_id == "1000000000"
    assert five.created_at == datetime.fromtimestamp(1658235676.532, UTC)
    assert five.reply is not None and five.reply.text == "ขอบคุณค่ะ" and five.reply.at is None
    assert five.can_reply is False and five.buyer_name is None
    assert six.rating is None and six.reply is None and six.can_reply is True


@respx.mock
@pytest.mark.parametrize(
    "answer",
    [
        # The review service's refusal inside the gateway's success envelope...
        ok(
            None,
            success=False,
            error_code="REPLY_ALREADY",
            error_msg="This review has already been replied to",
        ),
        # ...or as a gateway error: both shapes are read.
        httpx.Response(
            200,
            json={
                "code": "REPLY_ALREADY",
                "type": "ISV",
                "message": "This review has already been replied to",
                "request_id": "r",
            },
        ),
    ],
)
async def test_a_refused_reply_carries_lazadas_words(answer: httpx.Response) -> None:
    route = respx.get(REPLY).mock(return_value=answer)
    client, _ = make_client()
    async with client:
        with pytest.raises(ReviewReplyRefused) as refused:
            await client.reply_review(ReviewRef("11111111111", "2419854443"), "ขอบคุณค่ะ")
    assert refused.value.code == "REPLY_ALREADY"
    assert "already been replied" in refused.value.message
    assert params(route.calls.last.request)["id"] == "11111111111"
    assert params(route.calls.last.request)["content"] == "ขอบคุณค่ะ"


@respx.mock
async def test_reply_accepted() -> None:
    route = respx.get(REPLY).mock(return_value=ok("true", success="true"))
    client, _ = make_client()
    async with client:
        await client.reply_review(ReviewRef("11111111111", "2419854443"), "ขอบคุณค่ะ")
    assert route.call_count == 1


@respx.mock
async def test_traffic_control_is_retried_as_a_rate_limit() -> None:
    route = respx.get(REPLY).mock(
        side_effect=[
            ok(None, success=False, error_code="TRAFFIC_CONTROL", error_msg="Traffic control"),
            ok("true", success="true"),
        ]
    )
    client, _ = make_client()
    async with client:
        await client.reply_review(ReviewRef("1", "2"), "ok")
    assert route.call_count == 2


@respx.mock
async def test_a_gateway_refusal_is_not_taken_for_a_refused_reply() -> None:
    respx.get(REPLY).mock(
        return_value=httpx.Response(
            200,
            json={"code": "InvalidSignature", "type": "ISV", "message": "bad", "request_id": "r"},
        )
    )
    client, _ = make_client()
    async with client:
        with pytest.raises(PermanentError) as failed:
            await client.reply_review(ReviewRef("1", "2"), "ok")
    assert not isinstance(failed.value, ReviewReplyRefused | RateLimitedError)
