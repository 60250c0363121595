from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin


class OrderFulfillment(TimestampMixin, Base):
    """One shipment asked for an order (or one package of a split order): `requested` until
    the marketplace answers, then `shipped` or `failed` with the platform's words. The ship job
    claims a row with `lease_until`, commits, calls the platform, then writes the result."""

    __tablename__ = "order_fulfillments"
    __table_args__ = (
        # The same Idempotency-Key of the same user is the same fulfillment.
        UniqueConstraint("user_id", "idempotency_key"),
        # One ship of an order (package) at a time: a second while one runs is 409.
        Index(
            "uq_order_fulfillments_one_running",
            "order_id",
            text("coalesce(package_number, '')"),
            unique=True,
            postgresql_where=text("status = 'requested'"),
        ),
        Index("ix_order_fulfillments_user_created", "user_id", "created_at", "id"),
        Index("ix_order_fulfillments_order", "order_id", "created_at"),
        # The ship job's queue: what waits for one connection.
        Index(
            "ix_order_fulfillments_waiting",
            "connection_id",
            "created_at",
            postgresql_where=text("status = 'requested'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[str] = mapped_column(String(128))
    order_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("marketplace_orders.id", ondelete="CASCADE")
    )
    connection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_connections.id", ondelete="CASCADE")
    )
    platform_code: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), server_default="requested")
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    package_number: Mapped[str | None] = mapped_column(String(255))
    package_id: Mapped[str | None] = mapped_column(String(255))
    tracking_number: Mapped[str | None] = mapped_column(String(128))
    carrier: Mapped[str | None] = mapped_column(String(128))
    address_id: Mapped[str | None] = mapped_column(String(64))
    pickup_time_id: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(Text)
    shipped_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(server_default="0")
    tracking_reads: Mapped[int] = mapped_column(server_default="0")
