"""Between encrypted columns and the decrypted `Credentials` a client needs; and the
database-backed token store that makes a refresh safe across processes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.connections import repository
from app.connections.hosts import ensure_callable
from app.connections.schemas import MaskedCredentials
from app.crypto import CredentialCipher, mask_secret
from app.errors import is_lock_timeout
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
    )


def store_credentials(
    connection: MarketplaceConnection, credentials: Credentials, cipher: CredentialCipher
) -> None:
    connection.api_key_encrypted = cipher.encrypt(credentials.api_key)
    connection.api_secret_encrypted = cipher.encrypt(credentials.api_secret)
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


class DatabaseTokenStore:
    """Refreshes under the connection's row lock (so two workers never refresh at once) and
    commits the new pair in its own short transaction before anyone uses it: a Shopee refresh
    token works once, so losing the new pair would lose the shop. The client makes a single
    attempt under the lock (`single_attempt`) and backs off outside it."""

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
        async with self.sessionmaker() as session, session.begin():
            try:
                connection = await repository.get_for_update(session, self.connection_id)
            except DBAPIError as exc:
                if not is_lock_timeout(exc):
                    raise
                # Another process holds the row for its own refresh attempt: back off and
                # retry like any transient failure; the retry finds its new pair.
                raise TransientError(
                    "Another process is refreshing this connection's tokens",
                    platform="omni-sales",
                ) from exc
            if connection is None:
                raise LookupError("connection vanished during a token refresh")
            current = decrypt_credentials(connection, self.cipher)
            if current.access_token != stale.access_token:
                return current  # another worker refreshed while we waited for the lock
            pair = await do_refresh(current)
            refreshed = apply_token_pair(current, pair)
            store_tokens(connection, refreshed, self.cipher)
            return refreshed


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
