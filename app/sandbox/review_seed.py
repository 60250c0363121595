"""Seeded product reviews of a sandbox shop, platform-neutral: the same shop seed gives the
same reviews (Thai text, 1-5 stars, some already answered by the seller). Each platform's
review module renders them in its own wire format and applies its own reply rules."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from app.sandbox.seed import SeededShop

_TEXTS = {
    5: ("ของดีมาก ส่งไว แพ็คมาอย่างดี", "คุ้มค่ามาก จะกลับมาซื้ออีก", "สินค้าตรงปก ชอบมากค่ะ"),
    4: ("โดยรวมดี แต่ส่งช้านิดหน่อย", "ใช้ดี สีสวย ราคาไม่แพง", "ดีครับ กล่องบุบนิดหน่อย"),
    3: ("พอใช้ได้ ตามราคา", "ขนาดเล็กกว่าที่คิด", "กลาง ๆ ไม่ได้ว้าวมาก"),
    2: ("คุณภาพไม่ค่อยดี ใช้ได้ไม่นาน", "สีไม่ตรงกับรูป", "ส่งช้ามาก รอเกือบสองอาทิตย์"),
    1: ("ได้ของไม่ครบ ติดต่อร้านไม่ได้", "สินค้าเสียตั้งแต่แกะกล่อง", "ไม่ตรงปกเลย ผิดหวังมาก"),
}
_REPLIES = ("ขอบคุณมากค่ะ แล้วพบกันใหม่นะคะ", "ขออภัยในความไม่สะดวกค่ะ ทางร้านจะปรับปรุง")
_BUYERS = ("somchai.j", "ploy_ploy", "kanya1988", "niran.shop", "malee_k", "anan99", "krit.t")
_RATING_WEIGHTS = (5, 5, 10, 25, 55)  # 1..5 stars


@dataclass(slots=True)
class SeedReview:
    review_id: int
    product_id: int
    variation_id: int
    rating: int
    text: str
    buyer: str
    created_at: datetime
    order_number: int
    reply_text: str | None = None
    reply_at: datetime | None = None
    # The platform no longer takes a reply (Lazada's reply period; Shopee's is not documented).
    reply_closed: bool = False


@dataclass
class ReviewBook:
    reviews: list[SeedReview] = field(default_factory=list)  # newest first
    by_id: dict[int, SeedReview] = field(default_factory=dict)

    @classmethod
    def seeded(cls, shop: SeededShop, *, busy_reviews: int = 130) -> ReviewBook:
        """0-6 reviews per product over the last 80 days; the first product has
        `busy_reviews`, enough to need several pages on every platform."""
        end = shop.end
        reviews: list[SeedReview] = []
        for index, product in enumerate(shop.products):
            digest = hashlib.blake2b(f"{shop.seed}|reviews|{index}".encode(), digest_size=8)
            rng = random.Random(int.from_bytes(digest.digest(), "big"))
            count = busy_reviews if index == 0 else rng.randrange(0, 7)
            for n in range(count):
                rating = rng.choices((1, 2, 3, 4, 5), weights=_RATING_WEIGHTS)[0]
                created = end - timedelta(seconds=rng.randrange(3600, 80 * 86400))
                review = SeedReview(
                    review_id=9_000_000 + index * 1000 + n,
                    product_id=product.product_id,
                    variation_id=rng.choice(product.variations).variation_id,
                    rating=rating,
                    text=rng.choice(_TEXTS[rating]),
                    buyer=rng.choice(_BUYERS),
                    created_at=created,
                    order_number=rng.randrange(1_000_000, 9_999_999),
                    reply_closed=rng.random() < 0.05,
                )
                if rng.random() < 0.3:
                    review.reply_text = _REPLIES[0 if rating >= 4 else 1]
                    review.reply_at = min(end, created + timedelta(hours=rng.randrange(1, 48)))
                reviews.append(review)
        reviews.sort(key=lambda r: (r.created_at, r.review_id), reverse=True)
        return cls(reviews, {r.review_id: r for r in reviews})

    def of_product(self, product_id: int) -> list[SeedReview]:
        return [r for r in self.reviews if r.product_id == product_id]

    def reply(self, review: SeedReview, text: str) -> None:
        review.reply_text = text
        review.reply_at = datetime.now(UTC).replace(microsecond=0)


def book_for(owner: Any, shop: SeededShop) -> ReviewBook:
    """The review book of one sandbox shop object, made on first use. It lives on that object
    (not in a module-level registry) so two sandboxes with equal shop ids never share it."""
    store = vars(owner)
    book = store.get("_review_book")
    if book is None:
        book = store["_review_book"] = ReviewBook.seeded(shop)
    assert isinstance(book, ReviewBook)
    return book
