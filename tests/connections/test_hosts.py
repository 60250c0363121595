"""A connection keeps the marketplace hosts it was created against. Settings that name other
hosts (a `serve` restarted without the sandbox exports) make it `misconfigured`, with a
message naming the host, and nothing is sent with its tokens: no sync, product sync, check
or credential change reaches any host. Restoring the setting, or `omni-sales move-hosts`,
brings it back."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from app.cli import main
from app.config import Settings, get_settings
from app.connections import tasks as connection_tasks
from app.connections.hosts import move_to_configured_hosts, reconcile_host_statuses
from app.models import MarketplaceConnection, MarketplaceSyncLog
from app.platforms.registry import PlatformGateway
from app.platforms.types import PlatformCode
from app.products import service as products
from app.sync import lifecycle
from app.sync.engine import run_sync
from app.worker import mark_host_statuses
from app.worker_context import WorkerContext
from tests.conftest import (
    RunningSandbox,
    auth_headers,
    make_settings,
    running_app,
    running_worker,
)
from tests.sync.conftest import connect_shop, sync

SessionFactory = async_sessionmaker[AsyncSession]
REAL_SHOPEE = "https://partner.shopeemobile.com"


@pytest.fixture
def moved_settings(database_url: str, redis_url: str) -> Settings:
    """The same installation restarted without the sandbox exports: the real hosts."""
    return make_settings(database_url, redis_url)


@pytest.fixture
async def recorded(
    moved_settings: Settings, redis: Any
) -> AsyncIterator[tuple[WorkerContext, list[str]]]:
    """A worker context under the moved settings whose HTTP client records every request
    instead of sending it."""
    calls: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url.copy_with(query=None)))
        return httpx.Response(503)

    wc = WorkerContext.create(moved_settings, redis=redis)
    await wc.http.aclose()
    http = httpx.AsyncClient(transport=httpx.MockTransport(record))
    wc = dataclasses.replace(
        wc, http=http, gateway=PlatformGateway(moved_settings, http_client=http)
    )
    yield wc, calls
    await wc.close()


async def load(session_factory: SessionFactory, connection_id: str) -> MarketplaceConnection:
    async with session_factory() as session:
        row = await session.get(MarketplaceConnection, uuid.UUID(connection_id))
    assert row is not None
    return row


async def running_log(
    session_factory: SessionFactory, connection_id: str, kind: lifecycle.SyncKind
) -> uuid.UUID:
    async with session_factory() as session:
        row = await session.get(MarketplaceConnection, uuid.UUID(connection_id))
        assert row is not None
        log = await lifecycle.open_run(session, row, kind, stale_after=timedelta(minutes=5))
        await session.commit()
        return log.id


async def test_a_connection_keeps_the_hosts_it_was_made_against(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: SessionFactory,
) -> None:
    shopee, _ = await connect_shop(api, sandbox, "shopee")
    lazada, _ = await connect_shop(api, sandbox, "lazada")
    assert (await load(session_factory, shopee["id"])).api_base_url == f"{sandbox.root}/shopee"
    row = await load(session_factory, lazada["id"])
    assert row.api_base_url is not None and row.api_base_url.startswith(sandbox.root)
    assert row.auth_base_url == f"{sandbox.root}/lazada/auth/rest"


async def test_a_connection_whose_host_is_not_configured_is_misconfigured_and_never_called(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: SessionFactory,
    moved_settings: Settings,
    recorded: tuple[WorkerContext, list[str]],
) -> None:
    wc, calls = recorded
    connection, _ = await connect_shop(api, sandbox, "shopee", order_count=5)
    # Queued before the restart: an order sync and a product sync.
    order_log = await running_log(session_factory, connection["id"], lifecycle.ORDERS)
    product_log = await running_log(session_factory, connection["id"], lifecycle.PRODUCTS)

    # The order sync, run by a worker under the new settings, refuses before any call.
    assert await run_sync(wc, order_log) == "failed"
    row = await load(session_factory, connection["id"])
    assert row.status == "misconfigured"
    assert row.status_reason is not None
    assert f"{sandbox.root}/shopee" in row.status_reason and REAL_SHOPEE in row.status_reason
    assert await products.run_product_sync(wc, product_log) == "failed"
    async with session_factory() as session:
        for log_id in (order_log, product_log):
            log = await session.get(MarketplaceSyncLog, log_id)
            assert log is not None and log.status == "failed"
            assert log.error_message is not None and REAL_SHOPEE in log.error_message

    # The connection check refuses too, and so do a sync request and new credentials.
    result = await connection_tasks.verify_connection({"app": wc}, connection["id"])  # type: ignore[typeddict-item]
    assert result == "misconfigured"
    async with running_app(moved_settings) as moved_api:
        response = await sync(moved_api, connection)
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "connection_misconfigured"
        response = await moved_api.patch(
            f"/api/marketplace/connections/{connection['id']}",
            json={"credentials": {"accessToken": "new-token"}},
            headers=auth_headers(connection["userId"]),
        )
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "connection_misconfigured"
        listed = await moved_api.get(
            "/api/marketplace/connections",
            params={"userId": connection["userId"]},
            headers=auth_headers(connection["userId"]),
        )
        assert listed.json()["data"][0]["status"] == "misconfigured"
    assert calls == []


async def test_a_worker_start_marks_them_and_restoring_the_setting_brings_them_back(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: SessionFactory,
    settings: Settings,
    recorded: tuple[WorkerContext, list[str]],
) -> None:
    wc, calls = recorded
    connection, _ = await connect_shop(api, sandbox, "facebook")
    await mark_host_statuses(wc)
    row = await load(session_factory, connection["id"])
    assert row.status == "misconfigured"
    assert row.status_reason is not None and "FACEBOOK_GRAPH_URL" in row.status_reason

    async with session_factory() as session:  # `serve` restarted with the sandbox exports
        assert await reconcile_host_statuses(session, settings) == 1
        await session.commit()
    row = await load(session_factory, connection["id"])
    assert (row.status, row.status_reason) == ("active", None)
    async with running_worker(settings):
        assert (await sync(api, connection)).json()["data"]["status"] == "success"
    assert calls == []


async def test_moving_hosts_on_purpose_binds_them_to_the_configured_hosts(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: SessionFactory,
    moved_settings: Settings,
) -> None:
    connection, _ = await connect_shop(api, sandbox, "shopee")
    untouched, _ = await connect_shop(api, sandbox, "lazada")
    async with session_factory() as session:
        await reconcile_host_statuses(session, moved_settings)
        moved = await move_to_configured_hosts(session, moved_settings, PlatformCode.SHOPEE)
        await session.commit()
    assert uuid.UUID(connection["id"]) in moved
    row = await load(session_factory, connection["id"])
    assert (row.status, row.api_base_url) == ("active", REAL_SHOPEE)
    assert (await load(session_factory, untouched["id"])).status == "misconfigured"


def test_move_hosts_command_moves_the_connections_of_one_platform(
    database_url: str,
    redis_url: str,
    clean: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`omni-sales move-hosts --platform shopee` under the real hosts' settings."""
    ids = {"shopee": uuid.uuid4(), "lazada": uuid.uuid4()}

    async def insert() -> None:
        engine = create_async_engine(database_url)
        async with engine.begin() as conn:
            for platform, cid in ids.items():
                await conn.execute(
                    text(
                        "INSERT INTO marketplace_connections (id, user_id, platform_code, "
                        "shop_id, status, status_reason, api_key_encrypted, "
                        "api_secret_encrypted, access_token_encrypted, api_base_url) VALUES "
                        "(:id, 'u', :platform, '1', 'misconfigured', 'moved', 'x', 'x', 'x', "
                        "'http://127.0.0.1:9/old')"
                    ),
                    {"id": cid, "platform": platform},
                )
        await engine.dispose()

    async def stored() -> dict[str, tuple[str, str]]:
        engine = create_async_engine(database_url)
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT platform_code, status, api_base_url FROM marketplace_connections")
            )
            result = {row[0]: (row[1], row[2]) for row in rows}
        await engine.dispose()
        return result

    asyncio.run(insert())
    for name in ("SHOPEE_BASE_URL", "LAZADA_BASE_URL", "LAZADA_AUTH_URL", "FACEBOOK_GRAPH_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    get_settings.cache_clear()
    try:
        main(["move-hosts", "--platform", "shopee"])
    finally:
        get_settings.cache_clear()
    assert "Moved 1 connection(s)" in capsys.readouterr().out
    after = asyncio.run(stored())
    assert after["shopee"] == ("active", REAL_SHOPEE)
    assert after["lazada"] == ("misconfigured", "http://127.0.0.1:9/old")
