from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class CustomerRefreshMark(Base):
    """How far the customer refresh has read a connection's orders (by their `updated_at`)."""

    __tablename__ = "customer_refresh_marks"

    connection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_connections.id", ondelete="CASCADE"), primary_key=True
    )
    refreshed_to: Mapped[datetime]
