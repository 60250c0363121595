from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin


class LiveSession(TimestampMixin, Base):
    """A seller's live video (or post) taking "CF" comments as orders."""

    __tablename__ = "live_sessions"
    __table_args__ = (
        Index("ix_live_sessions_user_id_created_at", "user_id", "created_at"),
        # A comment finds its session by post; one open session per post.
        Index(
            "uq_live_sessions_open_post",
            "connection_id",
            "post_id",
            unique=True,
            postgresql_where=text("status = 'open'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[str] = mapped_column(String(128))
    connection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_connections.id", ondelete="CASCADE")
    )
    post_id: Mapped[str] = mapped_column(String(128))
    keyword: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), server_default="open")  # open | closed
    currency: Mapped[str] = mapped_column(String(3), server_default="THB")
    reply_template: Mapped[str | None] = mapped_column(Text)
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
