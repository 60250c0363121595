"""Lazada product reviews: `/review/seller/history/list` (review ids of one item in a window of
at most 7 days, within the last 90 days, pages `current` 1-50), `/review/seller/list/v2` (the
reviews of at most 10 ids) and `/review/seller/reply/add` (one text reply, at most 500
characters). Facts and sources: docs/reviews.md.

The review service's answers carry `success`, `error_code` and `error_msg` inside the gateway's
usual envelope; whether a refusal comes as a gateway error (`code` other than "0") or as
`success: false` under `code: "0"` is not documented, so both are read (`classify`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from app.platforms.base import NormalizedReview, ReviewRef, ReviewReply, ReviewReplyRefused
from app.platforms.errors import AuthError, MarketplaceError, PermanentError, RateLimitedError
from app.platforms.lazada.auth import LazadaAuth
from app.platforms.lazada.mapping import PERMANENT_CODES as GATEWAY_CODES
from app.platforms.lazada.mapping import PLATFORM, classify_response, parse_time
from app.platforms.types import Credentials
from app.platforms.values import MappingError, text_or_none

if TYPE_CHECKING:
    from app.platforms.lazada.client import LazadaClient

HISTORY_LIST = "/review/seller/history/list"
REVIEW_LIST = "/review/seller/list/v2"
REPLY_ADD = "/review/seller/reply/add"
MAX_PAGE = 50  # `current` "max value = 50"
DETAIL_BATCH = 10  # `id_list` "maxLength = 10"
_TRAFFIC_CONTROL = "TRAFFIC_CONTROL"
_MS = timedelta(milliseconds=1)


def _is_false(value: object) -> bool:
    return value is False or (isinstance(value, str) and value.lower() == "false")


def classify(response: httpx.Response) -> dict[str, Any]:
    """Lazada's envelope, then the review service's own `success` flag."""
    try:
        payload = classify_response(response)
    except PermanentError as exc:
        if exc.code == _TRAFFIC_CONTROL:
            raise RateLimitedError(
                exc.message, platform=PLATFORM, code=exc.code, request_id=exc.request_id
            ) from exc
        raise
    if _is_false(payload.get("success")):
        code = text_or_none(payload.get("error_code")) or "review_error"
        message = text_or_none(payload.get("error_msg")) or code
        request_id = text_or_none(payload.get("request_id"))
        error_class = RateLimitedError if code == _TRAFFIC_CONTROL else PermanentError
        raise error_class(message, platform=PLATFORM, code=code, request_id=request_id)
    return payload


async def _call(client: LazadaClient, api_path: str, params: Mapping[str, str]) -> dict[str, Any]:
    """A signed GET (as every sample of these calls is), refreshed once on an auth failure."""
    url = client.config.base_url.rstrip("/") + api_path

    async def run(credentials: Credentials) -> dict[str, Any]:
        auth = LazadaAuth(
            credentials.api_key, credentials.api_secret, api_path, credentials.access_token
        )
        return await client.transport.request(
            "GET", url, classify=classify, params=params, auth=auth
        )

    return await client._authorized(run)


def _ms(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1000))


def _int_or(value: object, default: int) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


def map_review(raw: Mapping[str, Any]) -> NormalizedReview:
    review_id, product_id = text_or_none(raw.get("id")), text_or_none(raw.get("product_id"))
    if review_id is None or product_id is None:
        raise MappingError("review without id or product_id")
    ratings = raw.get("ratings")
    rating: int | None = None
    if isinstance(ratings, Mapping):
        # The product's own stars; the overall rating where no product rating is given.
        value = ratings.get("product_rating") or ratings.get("overall_rating")
        stars = _int_or(value, 0)
        rating = stars if 1 <= stars <= 5 else None
    created = raw.get("create_time") or raw.get("submit_time")
    reply_text = text_or_none(raw.get("seller_reply"))
    can_reply = raw.get("can_reply")
    return NormalizedReview(
        external_review_id=review_id,
        external_product_id=product_id,
        rating=rating,
        text=str(raw.get("review_content") or ""),
        created_at=parse_time(created),
        buyer_name=None,  # Lazada's review answer names no buyer
        external_order_id=text_or_none(raw.get("order_id")),
        # The answer has the reply's text but not its time.
        reply=ReviewReply(reply_text, None) if reply_text else None,
        can_reply=None if can_reply is None else not _is_false(can_reply),
        raw=dict(raw),
    )


async def _ids_in(
    client: LazadaClient, item_id: str, start: datetime, end: datetime
) -> AsyncIterator[list[str]]:
    """Review ids of one item created in [start, end], a page at a time. A window holding
    more than 50 pages is halved (a page past 50 is refused)."""
    current = 1
    while True:
        params = {
            "item_id": item_id,
            "start_time": _ms(start),
            "end_time": _ms(end),
            "current": str(current),
        }
        data = (await _call(client, HISTORY_LIST, params)).get("data")
        data = data if isinstance(data, Mapping) else {}
        ids = [str(i) for i in data.get("id_list") or [] if i is not None]
        total = _int_or(data.get("total"), len(ids))
        page_size = max(1, _int_or(data.get("page_size"), len(ids) or 1))
        if current == 1 and total > MAX_PAGE * page_size and end - start > timedelta(seconds=2):
            middle = start + (end - start) / 2
            async for page in _ids_in(client, item_id, start, middle):
                yield page
            async for page in _ids_in(client, item_id, middle + _MS, end):
                yield page
            return
        if ids:
            yield ids
        if not ids or current * page_size >= total or current >= MAX_PAGE:
            return
        current += 1


async def iter_reviews(
    client: LazadaClient, item_ids: Sequence[str], since: datetime
) -> AsyncIterator[list[NormalizedReview]]:
    now = datetime.now(UTC).replace(microsecond=0)
    earliest = max(since, now - timedelta(days=client.review_history_days))
    window = timedelta(days=client.review_window_days)
    for item_id in item_ids:
        seen: set[str] = set()
        start = earliest
        while start < now:
            end = min(start + window - _MS, now)
            async for ids in _ids_in(client, item_id, start, end):
                fresh = [i for i in dict.fromkeys(ids) if i not in seen]
                seen.update(fresh)
                for offset in range(0, len(fresh), DETAIL_BATCH):
                    page = await _details(client, fresh[offset : offset + DETAIL_BATCH])
                    if page:
                        yield page
            start = end + _MS


async def _details(client: LazadaClient, ids: Sequence[str]) -> list[NormalizedReview]:
    # The reference's samples send the ids as a bracketed list: "[111111111111,11111111112]".
    payload = await _call(client, REVIEW_LIST, {"id_list": f"[{','.join(ids)}]"})
    data = payload.get("data")
    rows = data.get("review_list") if isinstance(data, Mapping) else None
    reviews: list[NormalizedReview] = []
    for raw in rows if isinstance(rows, list) else []:
        if not isinstance(raw, Mapping):
            continue
        try:
            reviews.append(map_review(raw))
        except MappingError as exc:
            client.events("review_failed", {"reviewId": str(raw.get("id")), "message": str(exc)})
    return reviews


async def reply_review(client: LazadaClient, review: ReviewRef, text: str) -> None:
    try:
        payload = await _call(client, REPLY_ADD, {"id": review.external_review_id, "content": text})
    except AuthError:
        raise
    except PermanentError as exc:
        if exc.code in GATEWAY_CODES:
            raise  # the gateway refused the call (signature, app key), not the reply
        raise ReviewReplyRefused(
            exc.message, platform=PLATFORM, code=exc.code, request_id=exc.request_id
        ) from exc
    except MarketplaceError:
        raise
    if _is_false(payload.get("data")):
        raise ReviewReplyRefused(
            "Lazada did not accept the reply",
            platform=PLATFORM,
            request_id=text_or_none(payload.get("request_id")),
        )
