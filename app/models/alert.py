from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class MarketplaceAlert(Base):
    """Outbox of operator alerts: written in the transaction of the event that causes it, so an
    alert exists exactly when its event committed; the unique dedupe key makes raising it
    again a no-op, and the worker delivers each row until it is `sent`."""

    __tablename__ = "marketplace_alerts"
    __table_args__ = (
        # The sweeper's scan: alerts still waiting for delivery.
        Index(
            "ix_marketplace_alerts_pending",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    type: Mapped[str] = mapped_column(String(64))
    connection_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("marketplace_connections.id", ondelete="SET NULL")
    )
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    # The exact JSON sent (text, not jsonb): every retry signs and sends the same bytes.
    body: Mapped[str] = mapped_column(Text)
    # pending | sent | failed (gave up) | skipped (no ALERT_WEBHOOK_URL / secret set)
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(server_default="0")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # A delivery in flight: claimed (and committed) before the POST, so no row lock is held
    # across the call; another runner skips the row until this passes.
    claimed_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
