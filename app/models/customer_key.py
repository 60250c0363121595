from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class CustomerKey(Base):
    """What identifies a customer of a user: `phone` (buyer_phone_key of the number), `email`
    (lower-cased) or `buyer` (`platform:buyer id`). A key belongs to one customer; an order
    whose keys belong to two customers merges them."""

    __tablename__ = "customer_keys"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
