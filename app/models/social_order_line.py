from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class SocialOrderLine(Base):
    """One code of one comment (or one product of a Messenger cart): `requested` units, of
    which `reserved` hold stock and the rest wait. Lines of one live product are served in
    (sort_at, sort_key) order: the comment's time, then its id."""

    __tablename__ = "social_order_lines"
    __table_args__ = (
        Index(
            "ix_social_order_lines_product_queue",
            "product_id",
            "sort_at",
            "sort_key",
            postgresql_where=text("active"),
        ),
        Index("ix_social_order_lines_order_id", "order_id"),
        Index("ix_social_order_lines_comment_id", "comment_row_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("marketplace_orders.id", ondelete="CASCADE")
    )
    session_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("live_sessions.id", ondelete="CASCADE")
    )
    product_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("live_session_products.id", ondelete="CASCADE")
    )
    comment_row_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("live_comments.id", ondelete="CASCADE")
    )
    master_sku_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("inventory_skus.id", ondelete="SET NULL")
    )
    code: Mapped[str | None] = mapped_column(String(16))
    sku: Mapped[str | None] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(512))
    external_product_id: Mapped[str | None] = mapped_column(String(128))
    unit_price: Mapped[Decimal]
    requested: Mapped[int]
    reserved: Mapped[int] = mapped_column(server_default="0")
    sort_at: Mapped[datetime]
    sort_key: Mapped[str] = mapped_column(String(160))
    # False once its comment was removed or edited away, or its order cancelled.
    active: Mapped[bool] = mapped_column(server_default="true")
