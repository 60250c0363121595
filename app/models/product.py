from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin


class MarketplaceProduct(TimestampMixin, Base):
    """A product as the platform lists it; its sellable rows (variations) are listings in
    `marketplace_stock_levels`."""

    __tablename__ = "marketplace_products"
    __table_args__ = (UniqueConstraint("connection_id", "external_product_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    connection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_connections.id", ondelete="CASCADE")
    )
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    platform_code: Mapped[str | None] = mapped_column(String(32))
    external_product_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str | None] = mapped_column(String(3))
    image_url: Mapped[str | None] = mapped_column(String(2048))
    product_updated_at: Mapped[datetime | None]
    raw: Mapped[dict[str, Any]]
