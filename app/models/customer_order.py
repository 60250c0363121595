from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class CustomerOrder(Base):
    """The customer an order belongs to, and the order version (its `updated_at`) that was
    linked: the refresh job skips orders whose version it has seen."""

    __tablename__ = "customer_orders"
    __table_args__ = (Index("ix_customer_orders_customer", "customer_id", "order_id"),)

    order_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("marketplace_orders.id", ondelete="CASCADE"), primary_key=True
    )
    customer_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("customers.id", ondelete="CASCADE")
    )
    order_version: Mapped[datetime]
