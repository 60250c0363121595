from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class MarketplaceFailedOrder(Base):
    """An order a sync could not read or store. Every later sync of the connection fetches it
    by id until it is stored, so the high-water mark may move past it without losing it."""

    __tablename__ = "marketplace_failed_orders"

    connection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_connections.id", ondelete="CASCADE"), primary_key=True
    )
    external_order_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    message: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(server_default="1")
    first_failed_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_failed_at: Mapped[datetime] = mapped_column(server_default=func.now())
