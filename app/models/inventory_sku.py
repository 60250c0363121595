from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class InventorySku(Base):
    """A seller's master SKU: one stock figure for every listing linked to it. The counters
    are a cache of the ledger and the reservation rows (recomputed nightly); the balance they
    stand for is `available - oversold`, and at most one of the two is above zero."""

    __tablename__ = "inventory_skus"
    __table_args__ = (
        UniqueConstraint("user_id", "sku"),
        CheckConstraint("available >= 0", name="available_not_negative"),
        CheckConstraint("oversold >= 0", name="oversold_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        CheckConstraint("low_stock_at >= 0", name="low_stock_at_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(128))
    sku: Mapped[str] = mapped_column(String(128))
    available: Mapped[int] = mapped_column(server_default="0")
    reserved: Mapped[int] = mapped_column(server_default="0")
    oversold: Mapped[int] = mapped_column(server_default="0")
    buffer: Mapped[int | None]
    zero_below: Mapped[int | None]
    max_quantity: Mapped[int | None]
    # A low-stock alert is raised when `available` reaches this (app/inventory/low_stock.py);
    # set while that alert has fired and the figure has not yet recovered above it.
    low_stock_at: Mapped[int | None]
    low_stock_alerted_at: Mapped[datetime | None]
    # False while `available` is the lowest stock the listings reported at their first sync.
    seller_set: Mapped[bool] = mapped_column(server_default="false")
    # Orders created before this instant are already counted in the platforms' stock.
    tracked_since: Mapped[datetime] = mapped_column(server_default=func.now())
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
