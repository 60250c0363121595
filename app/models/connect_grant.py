from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class MarketplaceConnectGrant(Base):
    """What a finished authorization flow granted (the shops and their tokens, encrypted),
    waiting for the user who started the flow to claim it (`POST /connect/complete`). Single
    use and short-lived; the random grant itself is never stored, only its SHA-256."""

    __tablename__ = "marketplace_connect_grants"
    __table_args__ = (Index("ix_marketplace_connect_grants_expires_at", "expires_at"),)

    grant_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128))
    platform_code: Mapped[str] = mapped_column(String(32))
    # JSON of the checked shops and the left-out ones, encrypted with the credentials cipher.
    payload_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime]
