from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin


class MarketplaceConnection(TimestampMixin, Base):
    """One seller shop on one marketplace. Secret columns hold Fernet tokens, never plain text."""

    __tablename__ = "marketplace_connections"
    __table_args__ = (
        UniqueConstraint("user_id", "platform_code", "shop_id"),
        Index("ix_marketplace_connections_user_id_created_at", "user_id", "created_at"),
        # The scheduler asks "which connections are due" every few seconds.
        Index("ix_marketplace_connections_next_sync_at", "next_sync_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[str] = mapped_column(String(128))
    platform_code: Mapped[str] = mapped_column(
        String(32), ForeignKey("marketplace_platforms.code", ondelete="RESTRICT")
    )
    shop_id: Mapped[str] = mapped_column(String(128))
    shop_name: Mapped[str | None] = mapped_column(String(255))
    # ISO 3166 alpha-2 (e.g. TH) for Lazada and Shopee; a Lazada shop is served by its
    # country's gateway. None where the platform has not said.
    country: Mapped[str | None] = mapped_column(String(2))
    # TikTok Shop's shop cipher, which every shop API call carries (an identifier, not a secret).
    shop_cipher: Mapped[str | None] = mapped_column(String(256))
    # active | error | reauth_required | misconfigured | disconnected
    status: Mapped[str] = mapped_column(String(32), server_default="active")
    status_reason: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(server_default="true")
    sync_interval_minutes: Mapped[int | None]

    api_key_encrypted: Mapped[str] = mapped_column(Text)
    api_secret_encrypted: Mapped[str] = mapped_column(Text)
    access_token_encrypted: Mapped[str] = mapped_column(Text)
    refresh_token_encrypted: Mapped[str | None] = mapped_column(Text)
    access_token_expires_at: Mapped[datetime | None]
    refresh_token_expires_at: Mapped[datetime | None]

    last_sync_at: Mapped[datetime | None]
    # When the schedule runs this connection's next sync (None: not scheduled).
    next_sync_at: Mapped[datetime | None]
    # The marketplace hosts the credentials were checked against (the API base URL and, for
    # Lazada, the token host): the connection is called there or not at all (None: a row
    # written before hosts were recorded, called wherever the settings point).
    api_base_url: Mapped[str | None] = mapped_column(Text)
    auth_base_url: Mapped[str | None] = mapped_column(Text)
    # The latest platform update time of an order actually stored (never wall-clock "now").
    orders_high_water_mark: Mapped[datetime | None]
