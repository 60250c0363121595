from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, SmallInteger, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin


class MarketplaceReview(TimestampMixin, Base):
    """A buyer's review of a product on a marketplace, and the seller's reply to it. Unique per
    (connection, platform review id); every sync upserts."""

    __tablename__ = "marketplace_reviews"
    __table_args__ = (
        UniqueConstraint("connection_id", "external_review_id"),
        # The list: a user's reviews, newest first, by keyset (created, id).
        Index("ix_marketplace_reviews_user_created", "user_id", "review_created_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    connection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_connections.id", ondelete="CASCADE")
    )
    user_id: Mapped[str] = mapped_column(String(128))
    platform_code: Mapped[str] = mapped_column(String(32))
    external_review_id: Mapped[str] = mapped_column(String(128))
    external_product_id: Mapped[str] = mapped_column(String(128))
    external_variation_id: Mapped[str | None] = mapped_column(String(128))
    external_order_id: Mapped[str | None] = mapped_column(String(128))
    # The listing reviewed, when the product sync has stored it (its SKU, its master SKU).
    listing_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("marketplace_stock_levels.id", ondelete="SET NULL"), index=True
    )
    product_name: Mapped[str | None] = mapped_column(String(512))
    rating: Mapped[int | None] = mapped_column(SmallInteger)
    text: Mapped[str] = mapped_column(Text, server_default="")
    buyer_name: Mapped[str | None] = mapped_column(String(255))
    review_created_at: Mapped[datetime]
    can_reply: Mapped[bool | None]
    reply_text: Mapped[str | None] = mapped_column(Text)
    reply_at: Mapped[datetime | None]
    # A reply being sent now (claimed by a request, see app/reviews/service.py).
    reply_claimed_at: Mapped[datetime | None]
    raw: Mapped[dict[str, Any]]
