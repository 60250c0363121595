from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class MessengerThread(Base):
    """When a buyer last wrote to the Page: Meta's 24-hour window for standard messages."""

    __tablename__ = "messenger_threads"

    connection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_connections.id", ondelete="CASCADE"), primary_key=True
    )
    psid: Mapped[str] = mapped_column(String(128), primary_key=True)
    last_inbound_at: Mapped[datetime]
