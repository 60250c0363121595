from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    LargeBinary,
    Numeric,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin
from app.models.webhook import MarketplaceWebhook

# An order still holding buyer data: never erased, or filled again by a newer platform version
# after its erasure. The retention job's partial index has exactly this predicate.
HOLDS_BUYER_DATA_SQL = (
    "buyer_erased_at IS NULL OR buyer_name IS NOT NULL OR buyer_phone IS NOT NULL "
    "OR buyer_email IS NOT NULL OR shipping_address IS NOT NULL"
)
# buyer_phone_key(text) is an SQL function of migration 0005: one key per Thai number whatever
# the prefix (+66812345678, 66812345678, 0812345678), for the buyer export.
PHONE_KEY_SQL = "buyer_phone_key(buyer_phone)"


def counted_at_sql(alias: str | None = None) -> str:
    """The instant an order counts in analytics: cash on delivery when placed, prepaid when
    paid (or when placed, where the platform gives no payment time). order_counted_at() is an
    SQL function of migration 0009, so the expression index and the analytics queries share
    one short text."""
    prefix = f"{alias}." if alias else ""
    return f"order_counted_at({prefix}is_cod, {prefix}paid_at, {prefix}order_created_at)"


COUNTED_AT_SQL = counted_at_sql()
# Statuses after which an order no longer changes; these are archived once old enough.
FINISHED_STATUSES = ("completed", "delivered", "cancelled", "returned", "failed")
ARCHIVE_DUE_SQL = "archived_at IS NULL AND status IN ({})".format(
    ", ".join(f"'{status}'" for status in FINISHED_STATUSES)
)


class MarketplaceOrder(TimestampMixin, Base):
    """One order, normalized, beside the platform's raw payload. `user_id` and `platform_code`
    are copied from the connection so list queries are one index range scan."""

    __tablename__ = "marketplace_orders"
    __table_args__ = (
        UniqueConstraint("connection_id", "external_order_id"),
        Index("ix_marketplace_orders_user_created", "user_id", "order_created_at", "id"),
        Index(
            "ix_marketplace_orders_user_platform_created",
            "user_id",
            "platform_code",
            "order_created_at",
            "id",
        ),
        Index(
            "ix_marketplace_orders_connection_created", "connection_id", "order_created_at", "id"
        ),
        Index("ix_marketplace_orders_user_status_created", "user_id", "status", "order_created_at"),
        # Integrators pull "what changed since" with sort=updatedAt and a cursor.
        Index("ix_marketplace_orders_user_updated", "user_id", "order_updated_at", "id"),
        Index("ix_marketplace_orders_user_phone_key", "user_id", text(PHONE_KEY_SQL)),
        Index(
            "ix_marketplace_orders_buyer_data_by_created",
            "order_created_at",
            postgresql_where=text(HOLDS_BUYER_DATA_SQL),
        ),
        Index("ix_marketplace_orders_user_counted", "user_id", text(COUNTED_AT_SQL)),
        # The order list without archived orders (its default): page and count in one index.
        Index(
            "ix_marketplace_orders_user_created_live",
            "user_id",
            "order_created_at",
            "id",
            postgresql_where=text("archived_at IS NULL"),
        ),
        # The archive job's queue: finished orders not archived yet, oldest first.
        Index(
            "ix_marketplace_orders_archive_due",
            "order_created_at",
            postgresql_where=text(ARCHIVE_DUE_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    connection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("marketplace_connections.id", ondelete="CASCADE")
    )
    user_id: Mapped[str] = mapped_column(String(128))
    platform_code: Mapped[str] = mapped_column(String(32))
    external_order_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(32))
    raw_status: Mapped[str] = mapped_column(String(64))
    buyer_name: Mapped[str | None] = mapped_column(String(255))
    buyer_phone: Mapped[str | None] = mapped_column(String(64))
    buyer_email: Mapped[str | None] = mapped_column(String(255))
    shipping_address: Mapped[dict[str, Any] | None]
    currency: Mapped[str] = mapped_column(String(3))
    subtotal: Mapped[Decimal] = mapped_column(Numeric)
    shipping_fee: Mapped[Decimal] = mapped_column(Numeric)
    discount: Mapped[Decimal] = mapped_column(Numeric)
    total: Mapped[Decimal] = mapped_column(Numeric)
    payment_method: Mapped[str | None] = mapped_column(String(64))
    is_cod: Mapped[bool] = mapped_column(server_default="false")
    order_created_at: Mapped[datetime]
    order_updated_at: Mapped[datetime]
    paid_at: Mapped[datetime | None]
    raw: Mapped[dict[str, Any]]
    # Hash of the normalized content: a re-read order with the same hash counts as unchanged.
    content_hash: Mapped[bytes] = mapped_column(LargeBinary(16))
    # Set when the buyer fields (and their copies in `raw`) were erased; the order stays.
    buyer_erased_at: Mapped[datetime | None]
    # Set by the archive job: left out of the order list by default, kept everywhere else.
    archived_at: Mapped[datetime | None]
    # Facebook social orders (migration 0010): `live` (CF comments) and `messenger` (carts)
    # are owned by this service (app/live); `marketplace` orders are read from a platform.
    # buyer_external_id is the commenter's or sender's Page-scoped id.
    channel: Mapped[str] = mapped_column(String(16), server_default="marketplace")
    buyer_external_id: Mapped[str | None] = mapped_column(String(128))
    # A live or Messenger order whose every line waits for stock: nothing to pay yet, left out
    # of unpaid counts and analytics until a unit is the buyer's.
    waiting_only: Mapped[bool] = mapped_column(server_default="false")


# Analytics asks each connection for its last processed push; declared here because the
# analytics queries (over orders) own it, as webhook.py declares its connections index.
Index(
    "ix_marketplace_webhooks_connection_processed",
    MarketplaceWebhook.connection_id,
    MarketplaceWebhook.processed_at,
    postgresql_where=text("status = 'processed'"),
)
