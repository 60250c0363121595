"""No connection row lock is held across more than one short marketplace attempt, and every
transaction that takes one gives up after a lock_timeout instead of queueing forever."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import app.platforms.http
from app.config import ClientTuning
from app.connections.credentials import DatabaseTokenStore, refresh_lock_key
from app.crypto import CredentialCipher
from app.models import MarketplaceConnection
from app.platforms.base import ClientConfig, RefreshFn, apply_token_pair
from app.platforms.shopee.client import ShopeeClient
from app.platforms.types import Credentials, TokenPair
from tests.conftest import ENCRYPTION_KEY, RunningSandbox, auth_headers
from tests.sync.conftest import connect_shop, control

SHOP_INFO = "/api/v2/shop/get_shop_info"
REFRESH = "/api/v2/auth/access_token/get"
BASE = "https://partner.example.test"


def single_attempt_in_force() -> bool:
    flag = getattr(app.platforms.http, "_single_attempt", None)
    return bool(flag.get()) if flag is not None else False


async def wait_for_call(sandbox: RunningSandbox, path: str, before: int) -> None:
    """Until the sandbox has received (and is delaying) the next call of `path`."""
    calls = sandbox.sandboxes.shopee.calls
    while calls[path] <= before:
        await asyncio.sleep(0.02)


async def lock_row_nowait(
    session_factory: async_sessionmaker[AsyncSession], connection_id: str
) -> None:
    async with session_factory() as session, session.begin():
        locked = await session.scalar(
            select(MarketplaceConnection.id)
            .where(MarketplaceConnection.id == uuid.UUID(connection_id))
            .with_for_update(nowait=True)
        )
        assert locked is not None


async def test_patch_checks_new_credentials_without_holding_the_row(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, credentials = await connect_shop(api, sandbox, "shopee")
    await control(sandbox, "shopee", "faults", {"latency_seconds": 1.0})
    before = sandbox.sandboxes.shopee.calls[SHOP_INFO]
    patch = asyncio.create_task(
        api.patch(
            f"/api/marketplace/connections/{connection['id']}",
            json={"credentials": {"accessToken": credentials["accessToken"]}},
            headers=auth_headers(connection["userId"]),
        )
    )
    try:
        await wait_for_call(sandbox, SHOP_INFO, before)
        # The marketplace is answering slowly right now; the row must be free meanwhile.
        await lock_row_nowait(session_factory, connection["id"])
    finally:
        response = await patch
        await control(sandbox, "shopee", "faults", {"latency_seconds": 0})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["status"] == "active"


def lock_not_available(error: BaseException | None) -> bool:
    """Whether a lock timeout is the failure, or caused it (a store may wrap it)."""
    while error is not None:
        if isinstance(error, DBAPIError) and getattr(error.orig, "sqlstate", None) == "55P03":
            return True
        error = error.__cause__
    return False


class CountingStore:
    """A token store that records, per call, whether the transport was held to one attempt."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self.single_attempt_per_call: list[bool] = []

    async def refresh(self, stale: Credentials, do_refresh: RefreshFn) -> Credentials:
        self.single_attempt_per_call.append(single_attempt_in_force())
        pair = await do_refresh(stale)
        self.credentials = apply_token_pair(stale, pair)
        return self.credentials


async def test_a_refresh_retried_after_transient_failures_takes_the_store_once_per_attempt() -> (
    None
):
    stale = Credentials(
        shop_id="600000",
        api_key="1000123",
        api_secret="a1b2c3",
        access_token="old-access",
        refresh_token="old-refresh",
        access_expires_at=datetime.now(UTC) - timedelta(minutes=1),
    )
    store = CountingStore(stale)
    tuning = ClientTuning.model_construct(
        calls_per_second=10_000,
        detail_concurrency=2,
        backoff_base_seconds=0.001,
        backoff_cap_seconds=0.005,
        max_attempts=5,
        timeout_seconds=5,
        max_wait_seconds=60,
    )
    client = ShopeeClient(stale, ClientConfig(base_url=BASE, tuning=tuning), token_store=store)
    failure = {"request_id": "r", "error": "error_server", "message": "busy"}
    renewed = {
        "request_id": "r",
        "error": "",
        "message": "",
        "access_token": "new-access",
        "refresh_token": "new-refresh",
        "expire_in": 14400,
    }
    with respx.mock(base_url=BASE) as router:
        refresh = router.post(REFRESH).mock(
            side_effect=[
                httpx.Response(500, json=failure),
                httpx.Response(500, json=failure),
                httpx.Response(200, json=renewed),
            ]
        )
        shop = router.get(SHOP_INFO).respond(
            json={"request_id": "r", "error": "", "shop_name": "Renewed shop"}
        )
        assert (await client.check_shop()).name == "Renewed shop"
    assert refresh.call_count == 3
    assert store.single_attempt_per_call == [True, True, True]
    assert shop.calls.last.request.url.params["access_token"] == "new-access"


class RecordingSessions:
    """A sessionmaker that remembers its sessions, so a refresh can look inside its own
    transaction."""

    def __init__(self, factory: async_sessionmaker[AsyncSession]) -> None:
        self.factory = factory
        self.sessions: list[AsyncSession] = []

    def __call__(self) -> AsyncSession:
        session = self.factory()
        self.sessions.append(session)
        return session


def renewed_pair() -> TokenPair:
    return TokenPair("fresh-access", "fresh-refresh", datetime.now(UTC) + timedelta(hours=4))


async def stored_credentials(
    session_factory: async_sessionmaker[AsyncSession], connection_id: str
) -> Credentials:
    from app.connections.credentials import decrypt_credentials

    async with session_factory() as session:
        row = await session.get(MarketplaceConnection, uuid.UUID(connection_id))
    assert row is not None
    return decrypt_credentials(row, CredentialCipher([ENCRYPTION_KEY]))


async def test_a_refresh_holds_no_transaction_open_during_the_marketplace_call(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, _ = await connect_shop(api, sandbox, "shopee")
    connection_id = uuid.UUID(connection["id"])
    store = DatabaseTokenStore(session_factory, CredentialCipher([ENCRYPTION_KEY]), connection_id)
    key = refresh_lock_key(connection_id)
    seen: dict[str, Any] = {}

    async def do_refresh(current: Credentials) -> TokenPair:
        async with session_factory() as probe:
            # The backend holding the refresh lock: idle, with no transaction open.
            seen["holder_states"] = (
                await probe.scalars(
                    text(
                        "SELECT a.state FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                        "AND l.classid::bigint = :hi AND l.objid::bigint = :lo"
                    ),
                    {"hi": key >> 32, "lo": key & 0xFFFF_FFFF},
                )
            ).all()
        return renewed_pair()

    stale = await stored_credentials(session_factory, connection["id"])
    refreshed = await store.refresh(stale, do_refresh)
    assert refreshed.access_token == "fresh-access"
    assert seen["holder_states"] == ["idle"]
    assert (await stored_credentials(session_factory, connection["id"])).access_token == (
        "fresh-access"
    )


async def test_a_refresh_behind_a_row_holder_calls_the_marketplace_and_stores_after_it(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, _ = await connect_shop(api, sandbox, "shopee")
    store = DatabaseTokenStore(
        session_factory, CredentialCipher([ENCRYPTION_KEY]), uuid.UUID(connection["id"])
    )
    stale = await stored_credentials(session_factory, connection["id"])
    called = asyncio.Event()

    async def do_refresh(current: Credentials) -> TokenPair:
        called.set()
        return renewed_pair()

    async with session_factory() as holder, holder.begin():
        await holder.execute(
            select(MarketplaceConnection.id)
            .where(MarketplaceConnection.id == uuid.UUID(connection["id"]))
            .with_for_update()
        )
        refresh = asyncio.create_task(store.refresh(stale, do_refresh))
        # The row lock does not keep the refresh from the marketplace; only its write waits.
        await asyncio.wait_for(called.wait(), timeout=5)
        await asyncio.sleep(0.1)
        assert not refresh.done()
    refreshed = await asyncio.wait_for(refresh, timeout=10)
    assert refreshed.access_token == "fresh-access"
    assert (await stored_credentials(session_factory, connection["id"])).access_token == (
        "fresh-access"
    )


async def test_a_refresh_behind_another_refresh_waits_and_uses_its_tokens(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Another worker mid-refresh holds the connection's refresh lock: the waiter waits, then
    finds the new pair stored and uses it without refreshing again."""
    connection, _ = await connect_shop(api, sandbox, "shopee")
    connection_id = uuid.UUID(connection["id"])
    stale = await stored_credentials(session_factory, connection["id"])
    stale.access_expires_at = datetime.now(UTC) - timedelta(minutes=1)
    tuning = ClientTuning.model_construct(
        calls_per_second=10_000,
        detail_concurrency=2,
        backoff_base_seconds=0.01,
        backoff_cap_seconds=0.05,
        max_attempts=40,
        timeout_seconds=5,
        max_wait_seconds=60,
    )
    cipher = CredentialCipher([ENCRYPTION_KEY])
    client = ShopeeClient(
        stale,
        ClientConfig(base_url=BASE, tuning=tuning),
        token_store=DatabaseTokenStore(session_factory, cipher, connection_id),
    )
    key = refresh_lock_key(connection_id)
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        refresh = router.post(REFRESH).respond(500)
        shop = router.get(SHOP_INFO).respond(
            json={"request_id": "r", "error": "", "shop_name": "S"}
        )
        # A connection of its own: the lock is the connection's, across its commits.
        async with session_factory.kw["bind"].connect() as holder:
            await holder.execute(select(func.pg_advisory_lock(key)))
            await holder.commit()
            check = asyncio.create_task(client.check_shop())
            await asyncio.sleep(0.3)  # the other refresh is still talking to the marketplace
            assert not check.done(), check.exception()
            await holder.execute(
                update(MarketplaceConnection)
                .where(MarketplaceConnection.id == connection_id)
                .values(
                    access_token_encrypted=cipher.encrypt("holder-access"),
                    access_token_expires_at=datetime.now(UTC) + timedelta(hours=4),
                )
            )
            await holder.commit()
            await holder.execute(select(func.pg_advisory_unlock(key)))
            await holder.commit()
        assert (await asyncio.wait_for(check, timeout=10)).name == "S"
    assert refresh.call_count == 0  # the holder's fresh pair was used, not refreshed again
    assert shop.calls.last.request.url.params["access_token"] == "holder-access"


async def test_a_patch_behind_a_row_holder_answers_503_after_the_lock_timeout(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("app.connections.repository.LOCK_TIMEOUT", "100ms", raising=False)
    connection, _ = await connect_shop(api, sandbox, "shopee")
    async with session_factory() as holder, holder.begin():
        await holder.execute(
            select(MarketplaceConnection.id)
            .where(MarketplaceConnection.id == uuid.UUID(connection["id"]))
            .with_for_update()
        )
        response = await asyncio.wait_for(
            api.patch(
                f"/api/marketplace/connections/{connection['id']}",
                json={"shopName": "Renamed"},
                headers=auth_headers(connection["userId"]),
            ),
            timeout=5,
        )
    assert response.status_code == 503, response.text
    assert response.headers.get("Retry-After")
    assert response.json()["error"]["code"] != "internal_error"
    async with session_factory() as session:
        row = await session.get(MarketplaceConnection, uuid.UUID(connection["id"]))
    assert row is not None and row.shop_name != "Renamed"
