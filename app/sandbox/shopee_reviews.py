"""Shopee sandbox: `v2.product.get_comment` and `v2.product.reply_comment` over the shop's
seeded reviews, with the reference's paging and rules (docs/reviews.md): `cursor` and
`page_size` (1-100) required, at most 500 comments per query (then `more` stays true with no
cursor), one reply per comment of 1-500 characters, batches of 1-100, Shopee's error codes."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from app.sandbox.review_seed import SeedReview, book_for

if TYPE_CHECKING:
    from app.sandbox.shopee import Call, Handler, Level, ShopeeSandbox

MAX_PER_QUERY = 500
MAX_REPLY_CHARS = 500


def _cursor(offset: int, item_id: int | None) -> str:
    return base64.urlsafe_b64encode(f"c:{item_id}:{offset}".encode()).decode().rstrip("=")


def _offset(cursor: str, item_id: int | None) -> int:
    from app.sandbox import shopee

    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, item, offset = raw.split(":")
        if tag != "c" or item != str(item_id):
            raise ValueError
        return int(offset)
    except ValueError:
        raise shopee._param_error("Wrong parameters, detail: invalid cursor.") from None


def render_comment(review: SeedReview, order_sn: str) -> dict[str, Any]:
    comment: dict[str, Any] = {
        "order_sn": order_sn,
        "comment_id": review.review_id,
        "comment": review.text,
        "buyer_username": review.buyer,
        "item_id": review.product_id,
        "model_id": 0,  # "It will only return 0 now"
        "model_id_list": [review.variation_id],
        "rating_star": review.rating,
        "editable": "EXPIRED",
        "hidden": False,
        "create_time": int(review.created_at.timestamp()),
        "media": {"image_url_list": [], "video_url_list": []},
    }
    if review.reply_text is not None:
        comment["comment_reply"] = {
            "reply": review.reply_text,
            "hidden": False,
            "create_time": int(review.reply_at.timestamp()) if review.reply_at else 0,
        }
    return comment


async def get_comment(state: ShopeeSandbox, call: Call) -> dict[str, Any]:
    from app.sandbox import shopee  # shopee.py mounts this module: imported at call time

    shop = call.the_shop
    book = book_for(shop, shop.seeded)
    if "cursor" not in call.query:
        raise shopee._param_error("Wrong parameters, detail: cursor is a required field.")
    page_size = shopee._int_param(call.query, "page_size") or 0
    if not 1 <= page_size <= 100:
        raise shopee._param_error(
            "Wrong parameters, detail: page_size should be between 1 and 100."
        )
    item_id = shopee._int_param(call.query, "item_id", required=False)
    comment_id = shopee._int_param(call.query, "comment_id", required=False)
    reviews = book.reviews
    if item_id is not None:
        if shopee._product(shop, item_id) is None:
            raise shopee.ShopeeApiError(
                "product.item_not_exist", f"Item (ID {item_id}) is not exist."
            )
        reviews = book.of_product(item_id)
    if comment_id is not None:
        found = book.by_id.get(comment_id)
        if found is None or (item_id is not None and found.product_id != item_id):
            raise shopee.ShopeeApiError(
                "product.cmt_not_exist", "The comment is not exist. Please check the comment."
            )
        reviews = [found]
    offset = _offset(call.query.get("cursor", ""), item_id)
    served = reviews[:MAX_PER_QUERY]
    page = served[offset : offset + page_size]
    end = offset + page_size
    more = end < len(reviews)
    next_cursor = _cursor(end, item_id) if end < len(served) else ""
    return {
        "response": {
            "item_comment_list": [render_comment(r, f"SBX{r.order_number}") for r in page],
            "more": more,
            "next_cursor": next_cursor,
        }
    }


async def reply_comment(state: ShopeeSandbox, call: Call) -> dict[str, Any]:
    from app.sandbox import shopee

    shop = call.the_shop
    book = book_for(shop, shop.seeded)
    comments = call.body.get("comment_list")
    if not isinstance(comments, list) or not 1 <= len(comments) <= 100:
        raise shopee._param_error("Wrong parameters, detail: comment_list is a required field.")
    ids: list[int] = []
    for entry in comments:
        comment_id = entry.get("comment_id") if isinstance(entry, dict) else None
        text = entry.get("comment") if isinstance(entry, dict) else None
        if type(comment_id) is not int or not isinstance(text, str):
            raise shopee._param_error("Wrong parameters, detail: comment_id and comment required.")
        if comment_id in ids:
            raise shopee.ShopeeApiError(
                "product.duplicate_comment_id", f"Duplicate comment id {comment_id}."
            )
        if not text.strip() or len(text) > MAX_REPLY_CHARS:
            raise shopee.ShopeeApiError(
                "product.comment_length_invalid",
                "Comment length should be between 1 and 500. Please update the comment.",
            )
        found = book.by_id.get(comment_id)
        if found is not None and found.reply_text is not None:
            raise shopee.ShopeeApiError(
                "product.duplicate_request", "You has replied this comment already."
            )
        ids.append(comment_id)
    results: list[dict[str, Any]] = []
    for entry in comments:
        found = book.by_id.get(entry["comment_id"])
        if found is None:
            results.append(
                {
                    "comment_id": entry["comment_id"],
                    "fail_error": "product.error_not_exist",
                    "fail_message": "The Comment you replied does not exist.",
                }
            )
            continue
        book.reply(found, entry["comment"])
        results.append({"comment_id": found.review_id})
    return {"response": {"result_list": results}}


API: tuple[tuple[str, str, Level, Handler], ...] = (
    ("GET", "/api/v2/product/get_comment", "shop", get_comment),
    ("POST", "/api/v2/product/reply_comment", "shop", reply_comment),
)
