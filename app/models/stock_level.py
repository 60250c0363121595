from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Index, Numeric, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class MarketplaceStockLevel(Base):
    """One sellable variation (SKU) of a listed product on one connection, with its stock."""

    __tablename__ = "marketplace_stock_levels"
    __table_args__ = (
        UniqueConstraint("connection_id", "external_product_id", "external_variation_id"),
        Index("ix_marketplace_stock_levels_connection_sku", "connection_id", "sku"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    connection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_connections.id", ondelete="CASCADE")
    )
    product_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("marketplace_products.id", ondelete="CASCADE"), index=True
    )
    external_product_id: Mapped[str] = mapped_column(String(128))
    # "" when the product has no variations, so the unique key still holds.
    external_variation_id: Mapped[str] = mapped_column(String(128), server_default="")
    sku: Mapped[str | None] = mapped_column(String(128))
    name: Mapped[str | None] = mapped_column(String(255))
    price: Mapped[Decimal | None] = mapped_column(Numeric)
    quantity: Mapped[int | None]
    synced_at: Mapped[datetime] = mapped_column(server_default=func.now())
