from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class SocialReply(Base):
    """Outbox of messages to buyers. `dedupe_key` (a comment's private reply, or one version
    of an order) is unique, so a change is never messaged twice whatever retries happen."""

    __tablename__ = "social_replies"
    __table_args__ = (
        Index("uq_social_replies_dedupe_key", "dedupe_key", unique=True),
        Index(
            "ix_social_replies_pending",
            "connection_id",
            "id",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_social_replies_order_id", "order_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    connection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_connections.id", ondelete="CASCADE")
    )
    order_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("marketplace_orders.id", ondelete="CASCADE")
    )
    dedupe_key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # private_reply | update
    comment_id: Mapped[str | None] = mapped_column(String(128))
    order_version: Mapped[int]
    # pending | sent | refused | superseded
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(server_default="0")
    recipient: Mapped[str | None] = mapped_column(String(160))
    messaging_type: Mapped[str | None] = mapped_column(String(32))
    text: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    sent_at: Mapped[datetime | None]
