from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class MarketplaceSyncLog(Base):
    """One sync run with live progress. The partial unique index makes "one running sync per
    connection" a database fact, whichever process or worker starts it."""

    __tablename__ = "marketplace_sync_logs"
    __table_args__ = (
        Index("ix_marketplace_sync_logs_connection_started", "connection_id", "started_at"),
        Index("ix_marketplace_sync_logs_user_started", "user_id", "started_at"),
        # One running sync per connection and kind: a product sync never blocks an order sync.
        Index(
            "uq_marketplace_sync_logs_one_running",
            "connection_id",
            "kind",
            unique=True,
            postgresql_where=text("status = 'running'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    connection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_connections.id", ondelete="CASCADE")
    )
    user_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32), server_default="orders")
    trigger: Mapped[str] = mapped_column(String(32), server_default="manual")
    status: Mapped[str] = mapped_column(String(16))  # running | success | partial | failed
    full: Mapped[bool] = mapped_column(server_default="false")
    started_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    orders_fetched: Mapped[int] = mapped_column(server_default="0")
    orders_created: Mapped[int] = mapped_column(server_default="0")
    orders_updated: Mapped[int] = mapped_column(server_default="0")
    orders_unchanged: Mapped[int] = mapped_column(server_default="0")
    orders_failed: Mapped[int] = mapped_column(server_default="0")
    pages_done: Mapped[int] = mapped_column(server_default="0")
    products_fetched: Mapped[int] = mapped_column(server_default="0")
    products_created: Mapped[int] = mapped_column(server_default="0")
    products_updated: Mapped[int] = mapped_column(server_default="0")
    error_message: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    # Where a resumed run starts: the range being synced and how far it is safely stored.
    checkpoint: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
