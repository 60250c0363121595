"""Lazada sandbox: the product review API over the shop's seeded reviews, with the
reference's rules (docs/reviews.md): `/review/seller/history/list` needs `item_id`,
`start_time` and `end_time` (epoch ms, at most 7 days apart, none older than 90 days) and
`current` (1-50), and answers 10 ids a page, newest first; `/review/seller/list/v2` takes at
most 10 ids; `/review/seller/reply/add` takes one reply of at most 500 characters.

The review service's refusals come as `success: false` with `error_code` / `error_msg` under
the gateway's `code: "0"` (the shape of the reference's samples; see the client module)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from app.sandbox.review_seed import SeedReview, book_for

if TYPE_CHECKING:
    from app.sandbox.lazada import LazadaShop

PAGE_SIZE = 10
MAX_PAGE = 50
MAX_SPAN = timedelta(days=7)
HISTORY = timedelta(days=90)
MAX_IDS = 10
MAX_REPLY_CHARS = 500
# Review ids as Lazada numbers them (large); the seed's ids are small and per shop.
_ID_BASE = 120_000_000_000_000

Handler = Callable[["LazadaShop | None", dict[str, str]], dict[str, Any]]


def refusal(code: str, message: str) -> dict[str, Any]:
    return {"success": False, "error_code": code, "error_msg": message, "data": None}


def _ok(data: Any) -> dict[str, Any]:
    return {"success": True, "error_code": None, "error_msg": None, "data": data}


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def review_id(review: SeedReview) -> int:
    return _ID_BASE + review.review_id


def render_review(review: SeedReview) -> dict[str, Any]:
    return {
        "id": str(review_id(review)),
        "product_id": str(review.product_id),
        "order_id": str(review.order_number),
        "review_type": "PRODUCT_REVIEW",
        "review_content": review.text,
        "review_images": [],
        "review_videos": [],
        "ratings": {
            "product_rating": str(review.rating),
            "overall_rating": str(review.rating),
            "seller_rating": "5",
            "logistics_rating": "4",
        },
        "create_time": str(_ms(review.created_at)),
        "submit_time": str(_ms(review.created_at)),
        "seller_reply": review.reply_text or "",
        "can_reply": "false" if review.reply_text or review.reply_closed else "true",
    }


def _time(params: dict[str, str], name: str) -> datetime | None:
    value = params.get(name, "")
    return datetime.fromtimestamp(int(value) / 1000, UTC) if value.isdigit() else None


def _lookup(lz: LazadaShop, raw_id: str) -> SeedReview | None:
    if not raw_id.isdigit():
        return None
    return book_for(lz, lz.shop).by_id.get(int(raw_id) - _ID_BASE)


def history_list(lz: LazadaShop | None, params: dict[str, str]) -> dict[str, Any]:
    assert lz is not None
    item_id = params.get("item_id", "")
    if not item_id.isdigit():
        return refusal("NULL_ITEMID", 'Cannot recognize "item_id"')
    start, end = _time(params, "start_time"), _time(params, "end_time")
    if start is None or end is None:
        return refusal("NULL_STARTTIME_OR_ENDTIME", 'Cannot recognize "start_time" or "end_time"')
    if end - start > MAX_SPAN:
        return refusal("PARAMS_VALIDATE_ERROR", "start_time&end_time range cannot exceed 7 days.")
    if start < datetime.now(UTC) - HISTORY - timedelta(minutes=5):
        return refusal("STARTTIME_OVER_LIMIT", "Only support checking 90 days of history data")
    current = params.get("current", "")
    if not current.isdigit() or int(current) < 1:
        return refusal("NULL_CURRENT", 'Cannot recognize "current"')
    if int(current) > MAX_PAGE:
        return refusal("CURRENT_ABOVE_LIMIT", '"current" is above the limit, the max value is 50')
    book = book_for(lz, lz.shop)
    ids = [
        review_id(r)
        for r in book.of_product(int(item_id))
        if start <= r.created_at.replace(microsecond=0) <= end
    ]
    first = (int(current) - 1) * PAGE_SIZE
    return _ok(
        {
            "current": current,
            "total": str(len(ids)),
            "page_size": str(PAGE_SIZE),
            "id_list": ids[first : first + PAGE_SIZE],
        }
    )


def review_list(lz: LazadaShop | None, params: dict[str, str]) -> dict[str, Any]:
    assert lz is not None
    raw = params.get("id_list", "").strip()
    parts = [p.strip() for p in raw.strip("[]").split(",") if p.strip()]
    if not raw.startswith("[") or not parts:
        return refusal("NULL_ID", "id list is null")
    if len(parts) > MAX_IDS:
        return refusal("PARAMS_VALIDATE_ERROR", "id list, maxLength = 10")
    found, outdated = [], []
    for part in parts:
        review = _lookup(lz, part)
        if review is None:
            outdated.append(int(part) if part.isdigit() else part)
        else:
            found.append(render_review(review))
    return _ok({"review_list": found, "outdated_reviews": outdated})


def reply_add(lz: LazadaShop | None, params: dict[str, str]) -> dict[str, Any]:
    assert lz is not None
    raw_id = params.get("id", "")
    if not raw_id:
        return refusal("NULL_ID", "Cannot recognize id")
    content = params.get("content", "")
    if not content.strip():
        return refusal("NULL_CONTENT", "Empty content")
    review = _lookup(lz, raw_id)
    if review is None:
        return refusal("NO_SUCH_REVIEW", "No such review")
    if review.reply_text is not None:
        return refusal(
            "REPLY_ALREADY",
            "This review has already been replied to and does not support multiple replies.",
        )
    if len(content) > MAX_REPLY_CHARS:
        return refusal("REPLY_CONTENT_TOO_LONG", "Reply too long")
    if review.reply_closed:
        return refusal("BEYOND_REPLY_PERIOD", "Reply over due")
    book_for(lz, lz.shop).reply(review, content)
    return _ok("true")


HANDLERS: dict[str, Handler] = {
    "/review/seller/history/list": history_list,
    "/review/seller/list/v2": review_list,
    "/review/seller/reply/add": reply_add,
}
