"""API keys: their format, their hash, and the lookup that authenticates a request.

Kept apart from the service so `app.auth` can import it without importing the login code
(which imports `app.auth` to sign tokens)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql import func

from app.models.api_key import ApiKey

API_KEY_PREFIX = "omni_"
# 32 random bytes: 256 bits, far beyond guessing, so one SHA-256 is a safe stored form.
_KEY_BYTES = 32
# `lastUsedAt` is written at most this often per key, sparing a write per request.
LAST_USED_PRECISION_SECONDS = 60


@dataclass(frozen=True, slots=True)
class KeyPrincipal:
    key_id: str
    user_id: str
    scopes: frozenset[str]


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(_KEY_BYTES)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def authenticate_api_key(
    sessionmaker: async_sessionmaker[AsyncSession], key: str
) -> KeyPrincipal | None:
    """The active key's owner and scopes, or None for an unknown or revoked key. Looked up on
    every request (no cache), so a revocation takes effect at once in every process."""
    async with sessionmaker() as session:
        row = (
            await session.execute(
                select(ApiKey.id, ApiKey.user_id, ApiKey.scopes).where(
                    ApiKey.key_hash == key_digest(key), ApiKey.revoked_at.is_(None)
                )
            )
        ).one_or_none()
        if row is None:
            return None
        stale = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, LAST_USED_PRECISION_SECONDS)
        await session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == row.id,
                or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < stale),
            )
            .values(last_used_at=func.now())
        )
        await session.commit()
    return KeyPrincipal(str(row.id), row.user_id, frozenset(row.scopes))
