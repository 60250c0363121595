from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class StockReservation(Base):
    """What one order holds of one master SKU (its lines summed). The unique key is what
    makes an order seen by sync, webhook and reconcile reserve once."""

    __tablename__ = "stock_reservations"
    __table_args__ = (
        UniqueConstraint("order_id", "master_sku_id"),
        Index(
            "ix_stock_reservations_open",
            "master_sku_id",
            postgresql_where=text("released_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    master_sku_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("inventory_skus.id", ondelete="CASCADE")
    )
    order_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("marketplace_orders.id", ondelete="CASCADE")
    )
    quantity: Mapped[int]
    oversold_quantity: Mapped[int] = mapped_column(server_default="0")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    fulfilled_at: Mapped[datetime | None]  # shipped: no longer "reserved", still sold
    released_at: Mapped[datetime | None]  # cancelled, returned or failed: back in stock
