from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class LiveComment(Base):
    """Every comment captured on a session's post, order or not, once per comment id."""

    __tablename__ = "live_comments"
    __table_args__ = (
        UniqueConstraint("session_id", "comment_id"),
        Index("ix_live_comments_session_commented", "session_id", "commented_at", "comment_id"),
        # The allocation's queue: order comments captured, lines not placed yet.
        Index(
            "ix_live_comments_pending",
            "session_id",
            "commented_at",
            "comment_id",
            postgresql_where=text("pending"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("live_sessions.id", ondelete="CASCADE")
    )
    comment_id: Mapped[str] = mapped_column(String(128))
    buyer_id: Mapped[str] = mapped_column(String(128))
    buyer_name: Mapped[str | None] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)
    commented_at: Mapped[datetime]
    # ordered | waitlisted | not_an_order | removed (pending until its lines are placed)
    outcome: Mapped[str] = mapped_column(String(16))
    pending: Mapped[bool] = mapped_column(server_default="false")
    order_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("marketplace_orders.id", ondelete="SET NULL")
    )
    # The Graph event time of the last add/edit applied: an older edit never wins.
    changed_at: Mapped[datetime]
    # clock_timestamp() when its lines were placed (the benchmark's "line on the order").
    processed_at: Mapped[datetime]
