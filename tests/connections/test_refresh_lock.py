"""A token refresh: one at a time per connection, and no row lock or open transaction held
across the marketplace call."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.connections.credentials import DatabaseTokenStore, decrypt_credentials
from app.crypto import CredentialCipher
from app.models import MarketplaceConnection
from app.platforms.types import Credentials, TokenPair
from tests.conftest import ENCRYPTION_KEY, RunningSandbox
from tests.sync.conftest import connect_shop


async def test_two_concurrent_refreshes_call_the_marketplace_once_without_holding_the_row(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, _ = await connect_shop(api, sandbox, "shopee")
    connection_id = uuid.UUID(connection["id"])
    cipher = CredentialCipher([ENCRYPTION_KEY])
    async with session_factory() as session:
        row = await session.get(MarketplaceConnection, connection_id)
        assert row is not None
        stale = decrypt_credentials(row, cipher)

    calls = 0
    row_free_during_call: list[bool] = []
    in_call = asyncio.Event()
    release = asyncio.Event()

    async def do_refresh(current: Credentials) -> TokenPair:
        nonlocal calls
        calls += 1
        in_call.set()
        # While the marketplace answers, another request can lock and update the row.
        async with session_factory() as other, other.begin():
            try:
                await other.execute(text("SET LOCAL lock_timeout = '200ms'"))
                await other.execute(
                    select(MarketplaceConnection.id)
                    .where(MarketplaceConnection.id == connection_id)
                    .with_for_update()
                )
                row_free_during_call.append(True)
            except Exception:
                row_free_during_call.append(False)
        await release.wait()
        return TokenPair(
            access_token="fresh-access",
            refresh_token="fresh-refresh",
            access_expires_at=datetime.now(UTC) + timedelta(hours=4),
        )

    first = DatabaseTokenStore(session_factory, cipher, connection_id)
    second = DatabaseTokenStore(session_factory, cipher, connection_id)
    one = asyncio.create_task(first.refresh(stale, do_refresh))
    await asyncio.wait_for(in_call.wait(), timeout=10)
    two = asyncio.create_task(second.refresh(stale, do_refresh))
    await asyncio.sleep(0.2)  # the second caller is waiting for the first
    release.set()
    results = await asyncio.wait_for(asyncio.gather(one, two), timeout=20)

    assert calls == 1
    assert row_free_during_call == [True]
    assert [r.access_token for r in results] == ["fresh-access", "fresh-access"]
    async with session_factory() as session:
        stored = await session.get(MarketplaceConnection, connection_id)
        assert stored is not None
        assert decrypt_credentials(stored, cipher).access_token == "fresh-access"
        assert decrypt_credentials(stored, cipher).refresh_token == "fresh-refresh"
