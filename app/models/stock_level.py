from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class MarketplaceStockLevel(Base):
    """A listing: one sellable product or variation on one connection, with the stock the
    platform reported and the state of our pushes to it."""

    __tablename__ = "marketplace_stock_levels"
    __table_args__ = (
        UniqueConstraint("connection_id", "external_product_id", "external_variation_id"),
        Index("ix_marketplace_stock_levels_connection_sku", "connection_id", "sku"),
        Index("ix_marketplace_stock_levels_user_id_id", "user_id", "id"),
        # The push job's queue: listings of one connection waiting for a push.
        Index(
            "ix_marketplace_stock_levels_pending",
            "connection_id",
            postgresql_where=text("push_status = 'pending'"),
        ),
        # The sweep's queue: failed or drifted pushes waiting for their next attempt.
        Index(
            "ix_marketplace_stock_levels_push_retry_at",
            "push_retry_at",
            postgresql_where=text("push_retry_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    connection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_connections.id", ondelete="CASCADE")
    )
    user_id: Mapped[str] = mapped_column(String(128), server_default="")
    platform_code: Mapped[str] = mapped_column(String(32), server_default="")
    product_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("marketplace_products.id", ondelete="CASCADE"), index=True
    )
    external_product_id: Mapped[str] = mapped_column(String(128))
    # "" when the product has no variations, so the unique key still holds.
    external_variation_id: Mapped[str] = mapped_column(String(128), server_default="")
    sku: Mapped[str | None] = mapped_column(String(128))
    name: Mapped[str | None] = mapped_column(String(255))  # the variation's name
    price: Mapped[Decimal | None] = mapped_column(Numeric)
    currency: Mapped[str | None] = mapped_column(String(3))
    quantity: Mapped[int | None]  # the platform's stock, as last read
    status: Mapped[str | None] = mapped_column(String(64))
    image_url: Mapped[str | None] = mapped_column(String(2048))
    raw: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    synced_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Push state: `push_seq` counts requests, `pushed_seq` the request last pushed; a push job
    # settles a listing only if no new request came while it was pushing.
    push_status: Mapped[str] = mapped_column(String(16), server_default="ok")
    pushed_stock: Mapped[int | None]
    push_message: Mapped[str | None] = mapped_column(Text)
    last_push_at: Mapped[datetime | None]
    push_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")
    pushed_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")
    push_attempts: Mapped[int] = mapped_column(server_default="0")
    # Until when a pending listing is a push round's to settle (or, before any round claimed it,
    # by when one should have): past it, the sweep queues another round.
    push_lease_until: Mapped[datetime | None]
    # When a transiently failed or drifted push is tried again; NULL when it is not retried.
    push_retry_at: Mapped[datetime | None]
