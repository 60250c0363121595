"""A running sync log blocks a new sync only while its runner may be alive: a heartbeat newer
than SYNC_STALE_SECONDS, or the connection's advisory lock held in this database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from app.models import MarketplaceSyncLog
from app.sync.repository import connection_lock_key
from app.sync.service import INTERRUPTED
from tests.conftest import RunningSandbox, make_settings, running_app
from tests.sync.conftest import connect_shop, sync

STALE_SECONDS = 10


@pytest.fixture
async def stale_api(
    database_url: str, redis_url: str, sandbox: RunningSandbox, clean: None
) -> AsyncIterator[httpx.AsyncClient]:
    # No worker and no wait: the sync request answers as soon as the new log is queued.
    settings = make_settings(
        database_url,
        redis_url,
        sandbox,
        SYNC_STALE_SECONDS=STALE_SECONDS,
        SYNC_WAIT_SECONDS=0,
    )
    async with running_app(settings) as client:
        yield client


async def add_running_log(
    session_factory: async_sessionmaker[AsyncSession],
    connection: dict[str, Any],
    silent_for: timedelta,
) -> uuid.UUID:
    log_id = uuid.uuid4()
    last_seen = datetime.now(UTC) - silent_for
    async with session_factory() as session:
        session.add(
            MarketplaceSyncLog(
                id=log_id,
                connection_id=uuid.UUID(connection["id"]),
                user_id=connection["userId"],
                status="running",
                started_at=last_seen,
                heartbeat_at=last_seen,
                details={},
                checkpoint={},
            )
        )
        await session.commit()
    return log_id


async def log_of(
    session_factory: async_sessionmaker[AsyncSession], log_id: uuid.UUID
) -> MarketplaceSyncLog:
    async with session_factory() as session:
        log = await session.get(MarketplaceSyncLog, log_id)
    assert log is not None
    return log


async def assert_blocked_by(response: httpx.Response, log_id: uuid.UUID) -> None:
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "sync_running"
    assert error["syncLogId"] == str(log_id)


@asynccontextmanager
async def advisory_lock_held(database_url: str, key: int) -> AsyncIterator[None]:
    """The lock a live runner holds, taken from another connection (another process)."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as holder:
            await holder.execute(select(func.pg_advisory_lock(key)))
            await holder.commit()
            yield
            await holder.execute(select(func.pg_advisory_unlock(key)))
            await holder.commit()
    finally:
        await engine.dispose()


async def other_database_url(database_url: str) -> str:
    """A second database on the same server (created once, kept for later runs)."""
    url = make_url(database_url)
    name = f"{url.database}_stale_other"
    engine = create_async_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            exists = await conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if not exists:
                with suppress(ProgrammingError):  # created meanwhile by a parallel run
                    await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


async def test_a_log_silent_past_the_setting_with_its_lock_free_is_closed(
    stale_api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, _ = await connect_shop(stale_api, sandbox, "lazada")
    dead = await add_running_log(session_factory, connection, timedelta(seconds=STALE_SECONDS + 1))
    response = await sync(stale_api, connection)
    assert response.status_code in (200, 202), response.text
    assert response.json()["data"]["syncLogId"] != str(dead)
    old = await log_of(session_factory, dead)
    assert old.status == "failed"
    assert old.error_message == INTERRUPTED
    assert old.finished_at is not None


async def test_a_log_with_a_recent_heartbeat_blocks(
    stale_api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, _ = await connect_shop(stale_api, sandbox, "lazada")
    running = await add_running_log(session_factory, connection, timedelta(seconds=5))
    await assert_blocked_by(await sync(stale_api, connection), running)
    assert (await log_of(session_factory, running)).status == "running"


async def test_a_silent_log_whose_runner_holds_the_lock_blocks(
    stale_api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    database_url: str,
) -> None:
    connection, _ = await connect_shop(stale_api, sandbox, "lazada")
    running = await add_running_log(
        session_factory, connection, timedelta(seconds=STALE_SECONDS + 1)
    )
    key = connection_lock_key(uuid.UUID(connection["id"]))
    async with advisory_lock_held(database_url, key):
        await assert_blocked_by(await sync(stale_api, connection), running)
    assert (await log_of(session_factory, running)).status == "running"


async def test_the_same_lock_key_in_another_database_does_not_block(
    stale_api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    database_url: str,
) -> None:
    connection, _ = await connect_shop(stale_api, sandbox, "lazada")
    dead = await add_running_log(session_factory, connection, timedelta(seconds=STALE_SECONDS + 1))
    key = connection_lock_key(uuid.UUID(connection["id"]))
    async with advisory_lock_held(await other_database_url(database_url), key):
        response = await sync(stale_api, connection)
    assert response.status_code in (200, 202), response.text
    old = await log_of(session_factory, dead)
    assert old.status == "failed" and old.error_message == INTERRUPTED
