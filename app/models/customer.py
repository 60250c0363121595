from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, String, Text, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin
from app.models.order import MarketplaceOrder


class Customer(TimestampMixin, Base):
    """One buyer of a user across channels (app/customers): the orders linked to it share a
    phone, an e-mail or a platform buyer id, transitively. The figures are recomputed from
    those orders by the refresh job; nothing here is typed in by hand."""

    __tablename__ = "customers"
    __table_args__ = (
        # The list: newest buyer first, keyset on (last_order_at, id) within one user.
        Index("ix_customers_user_last_order", "user_id", "last_order_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(128))
    # From the newest order that has each of them.
    name: Mapped[str | None] = mapped_column(String(255))
    phone: Mapped[str | None] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(255))
    channels: Mapped[list[str]] = mapped_column(
        ARRAY(String(32)), server_default=text("'{}'::varchar[]")
    )
    order_count: Mapped[int] = mapped_column(server_default="0")
    # {currency: sum as numeric text}; rendered with the currency's minor units.
    total_spent: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    first_order_at: Mapped[datetime | None]
    last_order_at: Mapped[datetime | None]
    # Lower-cased names, every phone's digits and e-mails: what `q` searches.
    search_text: Mapped[str] = mapped_column(Text, server_default="")


# The refresh job reads each connection's orders changed since its mark, in this order.
Index(
    "ix_marketplace_orders_connection_updated",
    MarketplaceOrder.connection_id,
    MarketplaceOrder.updated_at,
    MarketplaceOrder.id,
)
