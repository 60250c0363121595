from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, func
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class SkuMapping(Base):
    """Which master SKU a listing belongs to: at most one (the unique listing id). A manual
    row with no master SKU is a deliberate unlink that product syncs must not undo."""

    __tablename__ = "sku_mappings"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    listing_id: Mapped[int] = mapped_column(
        BigInteger,
        ForeignKey("marketplace_stock_levels.id", ondelete="CASCADE"),
        unique=True,
    )
    master_sku_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("inventory_skus.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[str] = mapped_column(String(16))  # auto | manual
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
