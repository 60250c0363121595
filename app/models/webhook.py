from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base
from app.models.connection import MarketplaceConnection


class MarketplaceWebhook(Base):
    """Inbox of verified marketplace pushes, one row per event per connection served; the
    dedupe key (the platform's event identity) makes a redelivery a no-op."""

    __tablename__ = "marketplace_webhooks"
    __table_args__ = (
        UniqueConstraint("connection_id", "dedupe_key"),
        Index("ix_marketplace_webhooks_user_id_id", "user_id", "id"),
        # The sweeper's scan: events still waiting for the worker.
        Index(
            "ix_marketplace_webhooks_pending",
            "next_attempt_at",
            postgresql_where=text("status = 'received'"),
        ),
        # A drain pass claims one connection's waiting events, oldest first.
        Index(
            "ix_marketplace_webhooks_connection_waiting",
            "connection_id",
            "id",
            postgresql_where=text("status = 'received'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    platform_code: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(128))
    connection_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("marketplace_connections.id", ondelete="SET NULL")
    )
    event_type: Mapped[str] = mapped_column(String(64))
    dedupe_key: Mapped[str] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]]
    # received | processed | failed | ignored
    status: Mapped[str] = mapped_column(String(16), server_default="received")
    attempts: Mapped[int] = mapped_column(server_default="0")
    error_message: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # When a drain may take it: the back-off of a failed try, or the lease of a drain pass
    # holding it. The sweeper queues a drain for events past it (never queued, or claimed by
    # a worker that died).
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=func.now())
    processed_at: Mapped[datetime | None]


# Every push names a shop, not a connection: this finds the connections that own it. It is
# declared here because the webhooks domain owns that query.
Index(
    "ix_marketplace_connections_platform_shop",
    MarketplaceConnection.platform_code,
    MarketplaceConnection.shop_id,
)
