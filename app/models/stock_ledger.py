from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class StockLedgerEntry(Base):
    """Append-only: every set, reserve, release, push and read-back of a master SKU. Order,
    connection and listing ids are kept without foreign keys so history outlives them."""

    __tablename__ = "stock_ledger"
    __table_args__ = (Index("ix_stock_ledger_master_sku_id_id", "master_sku_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    master_sku_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("inventory_skus.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(16))  # set | reserve | release | push | readback
    quantity: Mapped[int]
    available_after: Mapped[int]
    oversold: Mapped[bool] = mapped_column(server_default="false")
    order_id: Mapped[int | None] = mapped_column(BigInteger)
    connection_id: Mapped[uuid.UUID | None]
    listing_id: Mapped[int | None] = mapped_column(BigInteger)
    platform_code: Mapped[str | None] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(server_default=func.now())
