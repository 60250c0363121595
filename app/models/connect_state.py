from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class MarketplaceConnectState(Base):
    """One started authorization flow. The `state` sent to the platform names this row and is
    signed; the row makes it single use (`used_at`) and short-lived (`expires_at`)."""

    __tablename__ = "marketplace_connect_states"
    __table_args__ = (
        # The clean-up of old flows scans by expiry.
        Index("ix_marketplace_connect_states_expires_at", "expires_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128))
    platform_code: Mapped[str] = mapped_column(String(32))
    # Where the seller's browser goes afterwards (None: CONNECT_REDIRECT_URL).
    redirect_url: Mapped[str | None] = mapped_column(Text)
    # The callback the platform was given; Meta's code exchange must repeat it exactly.
    callback_url: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
