from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin


class LiveSessionProduct(TimestampMixin, Base):
    """A code the seller says on camera ("A12"): a master SKU at a live price, with an
    optional cap on what this live may sell (none: the SKU's stock is the limit)."""

    __tablename__ = "live_session_products"
    __table_args__ = (UniqueConstraint("session_id", "code"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("live_sessions.id", ondelete="CASCADE")
    )
    code: Mapped[str] = mapped_column(String(16))
    master_sku_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("inventory_skus.id", ondelete="CASCADE")
    )
    sku: Mapped[str] = mapped_column(String(128))
    price: Mapped[Decimal] = mapped_column(Numeric)
    cap: Mapped[int | None]
