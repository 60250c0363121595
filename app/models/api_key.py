from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ARRAY, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class ApiKey(Base):
    """An integrator's key (`omni_...`), acting as its user within its scopes. The key itself
    is shown once; only its SHA-256 is stored (it has 256 random bits, so a slow hash would
    add nothing) and its last 4 characters, to tell keys apart in a list."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_user_id", "user_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # The owner as every other table has it (a local user's id or an outside provider's `sub`).
    user_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(100))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    last4: Mapped[str] = mapped_column(String(4))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
