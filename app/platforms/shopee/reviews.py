"""Shopee product reviews ("comments"): `v2.product.get_comment` and `v2.product.reply_comment`.

Facts and sources: docs/reviews.md. get_comment pages by an opaque `cursor` (`page_size`
1-100) per item and has no time filter, so every page of every item is read; Shopee serves at
most 500 comments per query through OpenAPI. reply_comment takes a batch (1-100) of
`{comment_id, comment}`, 1-500 characters each, and one reply per comment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from app.platforms.base import (
    NormalizedReview,
    ReviewRef,
    ReviewReply,
    ReviewReplyRefused,
)
from app.platforms.errors import AuthError, PermanentError
from app.platforms.shopee.mapping import PLATFORM, error_code, optional_timestamp, timestamp
from app.platforms.values import MappingError, text_or_none

if TYPE_CHECKING:
    from app.platforms.shopee.client import ShopeeClient

GET_COMMENT = "/api/v2/product/get_comment"
REPLY_COMMENT = "/api/v2/product/reply_comment"
COMMENT_PAGE_SIZE = 100  # the documented maximum
# An item deleted since the product sync: its reviews are gone, the others still count.
_ITEM_GONE_CODES = frozenset({"item_not_exist", "error_item_not_found"})


def _id(value: object) -> str | None:
    # Shopee's reference types comment_id as a string, its sample answers with a number.
    if value is None or isinstance(value, bool) or value == "":
        return None
    return str(value)


def map_comment(raw: Mapping[str, Any]) -> NormalizedReview:
    comment_id = _id(raw.get("comment_id"))
    item_id = _id(raw.get("item_id"))
    if comment_id is None or item_id is None:
        raise MappingError("comment without comment_id or item_id")
    rating = raw.get("rating_star")
    # The field list says `comment_reply`, the reference's own sample `cmt_reply`.
    reply_raw = raw.get("comment_reply") or raw.get("cmt_reply")
    reply = None
    if isinstance(reply_raw, Mapping) and text_or_none(reply_raw.get("reply")):
        reply = ReviewReply(
            text=str(reply_raw["reply"]),
            at=optional_timestamp(reply_raw.get("create_time"), "comment_reply.create_time"),
        )
    models = raw.get("model_id_list")
    model = models[0] if isinstance(models, list) and models else raw.get("model_id")
    return NormalizedReview(
        external_review_id=comment_id,
        external_product_id=item_id,
        rating=int(rating) if isinstance(rating, int) and 1 <= rating <= 5 else None,
        text=str(raw.get("comment") or ""),
        created_at=timestamp(raw.get("create_time"), "create_time"),
        buyer_name=text_or_none(raw.get("buyer_username")),
        external_variation_id=_id(model) if model not in (0, "0") else None,
        external_order_id=text_or_none(raw.get("order_sn")),
        reply=reply,
        can_reply=None,
        raw=dict(raw),
    )


async def iter_reviews(
    client: ShopeeClient, item_ids: Sequence[str], since: datetime
) -> AsyncIterator[list[NormalizedReview]]:
    """Every comment of each item, a page at a time (`since` cannot be asked of Shopee)."""
    for item_id in item_ids:
        if not item_id.isdigit():
            continue
        cursor = ""
        cursors: set[str] = set()
        while True:
            params = {"item_id": int(item_id), "cursor": cursor, "page_size": COMMENT_PAGE_SIZE}
            try:
                payload = await client._shop_call("GET", GET_COMMENT, params=params)
            except AuthError:
                raise
            except PermanentError as exc:
                if error_code(exc.code) in _ITEM_GONE_CODES:
                    break
                raise
            body = client._response(payload, GET_COMMENT)
            page: list[NormalizedReview] = []
            for raw in body.get("item_comment_list") or []:
                if not isinstance(raw, Mapping):
                    continue
                try:
                    page.append(map_comment(raw))
                except MappingError as exc:
                    client.events("review_failed", {"itemId": item_id, "message": str(exc)})
            if page:
                yield page
            cursor = str(body.get("next_cursor") or "")
            if not body.get("more"):
                break
            if not cursor:
                # Shopee serves at most 500 comments of a query and still says `more`.
                client.events("review_cap", {"itemId": item_id})
                break
            if cursor in cursors:
                raise PermanentError("get_comment repeated its next_cursor", platform=PLATFORM)
            cursors.add(cursor)


async def reply_review(client: ShopeeClient, review: ReviewRef, text: str) -> None:
    """One comment in the batch call; a refusal (top-level or per comment) in Shopee's words."""
    try:
        comment_id: int | str = int(review.external_review_id)
    except ValueError:
        comment_id = review.external_review_id
    body = {"comment_list": [{"comment_id": comment_id, "comment": text}]}
    try:
        payload = await client._shop_call("POST", REPLY_COMMENT, json_body=body)
    except AuthError:
        raise
    except PermanentError as exc:
        if (exc.code or "").startswith("product."):
            raise ReviewReplyRefused(
                exc.message, platform=PLATFORM, code=exc.code, request_id=exc.request_id
            ) from exc
        raise
    answer = client._response(payload, REPLY_COMMENT)
    for result in answer.get("result_list") or []:
        if not isinstance(result, Mapping) or _id(result.get("comment_id")) != str(comment_id):
            continue
        failure = text_or_none(result.get("fail_error"))
        if failure:
            raise ReviewReplyRefused(
                str(result.get("fail_message") or failure),
                platform=PLATFORM,
                code=failure,
                request_id=payload.get("request_id"),
            )
        return
    raise PermanentError(
        "Shopee did not confirm the reply",
        platform=PLATFORM,
        request_id=payload.get("request_id"),
    )
