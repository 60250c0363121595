"""Between encrypted columns and the decrypted `Credentials` a client needs; and the
database-backed token store that makes a refresh safe across processes."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app.connections.hosts import ensure_callable
from app.connections.schemas import MaskedCredentials
from app.crypto import CredentialCipher, mask_secret
from app.models import MarketplaceConnection
from app.platforms.base import RefreshFn, apply_token_pair
from app.platforms.errors import TransientError
from app.platforms.http import EventSink, ignore_events
from app.platforms.registry import build_client
from app.platforms.types import Credentials, PlatformCode

if TYPE_CHECKING:
    from app.platforms.base import MarketplaceClient
    from app.worker_context import WorkerContext


def decrypt_credentials(connection: MarketplaceConnection, cipher: CredentialCipher) -> Credentials:
    return Credentials(
        shop_id=connection.shop_id,
        api_key=cipher.decrypt(connection.api_key_encrypted),
        api_secret=cipher.decrypt(connection.api_secret_encrypted),
        access_token=cipher.decrypt(connection.access_token_encrypted),
        refresh_token=(
            cipher.decrypt(connection.refresh_token_encrypted)
            if connection.refresh_token_encrypted
            else None
        ),
        access_expires_at=connection.access_token_expires_at,
        refresh_expires_at=connection.refresh_token_expires_at,
        shop_cipher=connection.shop_cipher,
    )


def store_credentials(
    connection: MarketplaceConnection, credentials: Credentials, cipher: CredentialCipher
) -> None:
    connection.api_key_encrypted = cipher.encrypt(credentials.api_key)
    connection.api_secret_encrypted = cipher.encrypt(credentials.api_secret)
    if credentials.shop_cipher:
        connection.shop_cipher = credentials.shop_cipher
    store_tokens(connection, credentials, cipher)


def store_tokens(
    connection: MarketplaceConnection, credentials: Credentials, cipher: CredentialCipher
) -> None:
    connection.access_token_encrypted = cipher.encrypt(credentials.access_token)
    connection.refresh_token_encrypted = (
        cipher.encrypt(credentials.refresh_token) if credentials.refresh_token else None
    )
    connection.access_token_expires_at = credentials.access_expires_at
    connection.refresh_token_expires_at = credentials.refresh_expires_at


def masked(connection: MarketplaceConnection, cipher: CredentialCipher) -> MaskedCredentials:
    def show(token: str | None) -> str | None:
        return mask_secret(cipher.decrypt(token)) if token else None

    return MaskedCredentials(
        api_key=show(connection.api_key_encrypted),
        api_secret=show(connection.api_secret_encrypted),
        access_token=show(connection.access_token_encrypted),
        refresh_token=show(connection.refresh_token_encrypted),
        access_token_expires_at=connection.access_token_expires_at,
    )


# How long a refresh waits for another process's refresh of the same connection.
REFRESH_LOCK_WAIT_SECONDS = 20.0
REFRESH_LOCK_POLL_SECONDS = 0.05
STORE_LOCK_TIMEOUT = "10s"


def refresh_lock_key(connection_id: uuid.UUID) -> int:
    """The advisory-lock key of "a token refresh of this connection is under way" (its own
    key space by hashing, apart from the sync's per-connection key)."""
    digest = hashlib.blake2b(b"token-refresh:" + connection_id.bytes, digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF_FFFF_FFFF


class DatabaseTokenStore:
    """One refresh at a time per connection, across processes, without holding a row lock or
    an open transaction across the marketplace call: a session-level advisory lock, taken on a
    connection of its own that has no transaction open, guards the refresh; the stored token
    is re-read (and the new pair written) in short transactions of their own. The new pair is
    committed before anyone uses it: a Shopee refresh token works once, so losing the new pair
    would lose the shop. The client makes a single attempt per call (`single_attempt`) and
    backs off outside it."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        cipher: CredentialCipher,
        connection_id: uuid.UUID,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.cipher = cipher
        self.connection_id = connection_id
        self.refreshed_at: datetime | None = None

    async def refresh(self, stale: Credentials, do_refresh: RefreshFn) -> Credentials:
        engine: AsyncEngine = self.sessionmaker.kw["bind"]
        key = refresh_lock_key(self.connection_id)
        async with engine.connect() as lock:
            await _take_advisory_lock(lock, key)
            try:
                current = await self._stored()
                if current.access_token != stale.access_token:
                    return current  # another worker refreshed while we waited for the lock
                pair = await do_refresh(current)
                refreshed = apply_token_pair(current, pair)
                await self._store(refreshed)
                self.refreshed_at = datetime.now(UTC)
                return refreshed
            finally:
                # Shielded: a cancelled refresh must still give the lock back.
                await asyncio.shield(_release_advisory_lock(lock, key))

    async def _stored(self) -> Credentials:
        async with self.sessionmaker() as session:
            connection = await session.get(MarketplaceConnection, self.connection_id)
            if connection is None:
                raise LookupError("connection vanished during a token refresh")
            return decrypt_credentials(connection, self.cipher)

    async def _store(self, refreshed: Credentials) -> None:
        # It waits out a request holding the row for its short step (giving up would lose a
        # pair the marketplace has already issued), but not forever: a caller that held the row
        # across this refresh would otherwise deadlock with it.
        async with self.sessionmaker() as session:
            await session.execute(text(f"SET LOCAL lock_timeout = '{STORE_LOCK_TIMEOUT}'"))
            connection = await session.get(MarketplaceConnection, self.connection_id)
            if connection is None:
                raise LookupError("connection vanished during a token refresh")
            store_tokens(connection, refreshed, self.cipher)
            await session.commit()


async def _take_advisory_lock(lock: AsyncConnection, key: int) -> None:
    """Try, and commit after each try, so the waiting holds no transaction open."""
    deadline = asyncio.get_running_loop().time() + REFRESH_LOCK_WAIT_SECONDS
    while True:
        taken = await lock.scalar(select(func.pg_try_advisory_lock(key)))
        await lock.commit()
        if taken:
            return
        if asyncio.get_running_loop().time() >= deadline:
            # Another process holds it for its own refresh: back off and retry like any
            # transient failure; the retry finds its new pair.
            raise TransientError(
                "Another process is refreshing this connection's tokens", platform="omni-sales"
            )
        await asyncio.sleep(REFRESH_LOCK_POLL_SECONDS)


async def _release_advisory_lock(lock: AsyncConnection, key: int) -> None:
    await lock.execute(select(func.pg_advisory_unlock(key)))
    await lock.commit()


def connection_client(
    wc: WorkerContext, connection: MarketplaceConnection, *, events: EventSink = ignore_events
) -> MarketplaceClient:
    """The client a job uses for a connection: its decrypted credentials, the API host of the
    seller's country, a token store that refreshes under the row lock, and the call budget
    every process shares. A connection whose hosts are no longer the configured ones raises
    `HostNotConfigured` here, before any call (its tokens must not go to another host)."""
    ensure_callable(connection, wc.settings)
    credentials = decrypt_credentials(connection, wc.cipher)
    platform = PlatformCode(connection.platform_code)
    return build_client(
        platform,
        credentials,
        wc.settings,
        country=connection.country,
        token_store=DatabaseTokenStore(wc.sessionmaker, wc.cipher, connection.id),
        events=events,
        http_client=wc.http,
        limiter=wc.limiter_for(connection.id, platform=platform.value, app_key=credentials.api_key),
    )
