from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin


class SocialOrder(TimestampMixin, Base):
    """What this service keeps beside a live or Messenger order (which it owns, unlike the
    read-only marketplace orders): the buyer's Messenger identity and the change count that
    replies are keyed on."""

    __tablename__ = "social_orders"
    __table_args__ = (
        # One open (unpaid) order per buyer per session: their lines accumulate on it.
        Index(
            "uq_social_orders_open_buyer",
            "session_id",
            "buyer_id",
            unique=True,
            postgresql_where=text("is_open"),
        ),
    )

    order_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("marketplace_orders.id", ondelete="CASCADE"), primary_key=True
    )
    connection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_connections.id", ondelete="CASCADE"), index=True
    )
    session_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("live_sessions.id", ondelete="SET NULL")
    )
    channel: Mapped[str] = mapped_column(String(16))  # live | messenger
    buyer_id: Mapped[str] = mapped_column(String(128))
    # Page-scoped id to message the buyer at: the sender of a Messenger event, or what the
    # answer to the private reply named.
    psid: Mapped[str | None] = mapped_column(String(128))
    first_comment_id: Mapped[str | None] = mapped_column(String(128))
    is_open: Mapped[bool] = mapped_column(server_default="true")
    version: Mapped[int] = mapped_column(server_default="0")
    reply_error: Mapped[str | None] = mapped_column(Text)
