"""Real PostgreSQL and Redis (TEST_DATABASE_URL / TEST_REDIS_URL, or embedded ones), the
sandbox marketplaces on a loopback port, and a clean state for every test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from arq import create_pool
from arq.connections import ArqRedis
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.auth import issue_token
from app.cli import run_migrations
from app.config import ClientTuning, Settings
from app.crypto import CredentialCipher
from app.jobs import redis_settings
from app.main import create_app

JWT_SECRET = "test-jwt-secret-that-is-long-enough-for-hs256"
ENCRYPTION_KEY = CredentialCipher.generate_key()
# Fast retries in tests: the behaviour is the same, the waits are not.
TEST_TUNING = ClientTuning(
    calls_per_second=1000, backoff_base_seconds=0.01, backoff_cap_seconds=0.05, max_attempts=8
)


def _asyncpg(url: str) -> str:
    return "postgresql+asyncpg://" + url.split("://", 1)[1] if "+asyncpg" not in url else url


@pytest.fixture(scope="session")
def service_urls() -> Iterator[tuple[str, str]]:
    database_url = os.environ.get("TEST_DATABASE_URL")
    redis_url = os.environ.get("TEST_REDIS_URL")
    services = None
    if not database_url or not redis_url:
        from app.embedded import EmbeddedServices

        folder = Path(tempfile.mkdtemp(prefix="omni-sales-tests-"))
        services = EmbeddedServices(folder)
        embedded_db, embedded_redis = services.start()
        database_url = database_url or embedded_db
        redis_url = redis_url or embedded_redis
    try:
        yield _asyncpg(database_url), redis_url
    finally:
        if services is not None:
            services.stop()
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(service_urls: tuple[str, str]) -> str:
    url = service_urls[0]

    async def reset_schema() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        await engine.dispose()

    asyncio.run(reset_schema())
    run_migrations(url)
    return url


@pytest.fixture(scope="session")
def redis_url(service_urls: tuple[str, str]) -> str:
    return service_urls[1]


@dataclass
class RunningSandbox:
    sandboxes: Any  # app.sandbox.app.SandboxSet
    root: str

    @property
    def settings(self) -> dict[str, str]:
        from app.sandbox.app import base_urls

        return base_urls(self.root)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
async def sandbox_server() -> AsyncIterator[RunningSandbox]:
    """The three sandboxes behind a real uvicorn on a loopback port (real HTTP)."""
    from app.sandbox.app import SandboxSet, build_app

    sandboxes = SandboxSet()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(build_app(sandboxes), host="127.0.0.1", port=port, log_config=None)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield RunningSandbox(sandboxes, f"http://127.0.0.1:{port}")
    server.should_exit = True
    await task


@pytest.fixture
async def sandbox(sandbox_server: RunningSandbox) -> RunningSandbox:
    for state in (
        sandbox_server.sandboxes.shopee,
        sandbox_server.sandboxes.lazada,
        sandbox_server.sandboxes.facebook,
    ):
        state.faults.reset()
    return sandbox_server


def make_settings(
    database_url: str, redis_url: str, sandbox: RunningSandbox | None = None, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "AUTH_JWT_SECRET": SecretStr(JWT_SECRET),
        "CREDENTIALS_ENCRYPTION_KEYS": [SecretStr(ENCRYPTION_KEY)],
        "SYNC_WAIT_SECONDS": 20,
        "clients": TEST_TUNING,
    }
    if sandbox is not None:
        values.update(sandbox.settings)
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def clean(engine: AsyncEngine, redis_url: str) -> AsyncIterator[None]:
    async with engine.begin() as conn:
        # A job cancelled mid-transaction by an earlier test's teardown must not hold locks
        # that make this TRUNCATE wait forever.
        await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND state LIKE 'idle in transaction%'"
            )
        )
        tables = (
            await conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename NOT IN ('marketplace_platforms', 'alembic_version')"
                )
            )
        ).scalars()
        await conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        await conn.execute(text("UPDATE marketplace_platforms SET is_active = true"))
    redis = await create_pool(redis_settings(redis_url))
    await redis.flushdb()
    await redis.aclose()
    yield
    await _no_success_log_hides_a_missing_order(engine)


async def _no_success_log_hides_a_missing_order(engine: AsyncEngine) -> None:
    """After every test: a sync log that says `success` must not have left an order of its
    connection unstored (one waiting in marketplace_failed_orders since before it finished)."""
    async with engine.connect() as conn:
        hidden = (
            await conn.execute(
                text(
                    "SELECT l.id, f.external_order_id FROM marketplace_sync_logs l "
                    "JOIN marketplace_failed_orders f ON f.connection_id = l.connection_id "
                    "AND f.first_failed_at < l.finished_at "
                    "WHERE l.status = 'success' UNION ALL "
                    "SELECT id, NULL FROM marketplace_sync_logs "
                    "WHERE status = 'success' AND orders_failed > 0"
                )
            )
        ).all()
    assert not hidden, f"sync logs say success with orders missing: {hidden}"


@pytest.fixture
def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(redis_settings(redis_url))
    yield pool
    await pool.aclose()


@pytest.fixture
def settings(database_url: str, redis_url: str, sandbox: RunningSandbox) -> Settings:
    return make_settings(database_url, redis_url, sandbox)


def auth_headers(user_id: str, **kwargs: Any) -> dict[str, str]:
    token = issue_token(user_id, ttl=timedelta(minutes=10), secret=JWT_SECRET, **kwargs)
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def running_app(
    settings: Settings, platform_http: httpx.AsyncClient | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """The API over ASGI, with its lifespan (database, Redis, marketplace HTTP client)."""
    app = create_app(settings, platform_http=platform_http)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://omni.test") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


@pytest.fixture
async def api(settings: Settings, clean: None) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(settings) as client:
        yield client


async def create_sandbox_shop(
    sandbox: RunningSandbox, platform: str, *, order_count: int = 0, days: int = 30, **extra: Any
) -> dict[str, str]:
    """A new shop in a sandbox (via its control endpoint); returns its credentials."""
    shop_id = extra.pop("shopId", None) or str(_next_shop_id())
    async with httpx.AsyncClient(base_url=sandbox.root) as client:
        response = await client.post(
            f"/{platform}/_sandbox/shops",
            json={
                "shopId": shop_id,
                "seed": f"{platform}-{shop_id}",
                "orderCount": order_count,
                "days": days,
                **extra,
            },
        )
        response.raise_for_status()
        credentials: dict[str, str] = response.json()
        return credentials


_shop_counter = iter(range(880_000_001, 990_000_000))


def _next_shop_id() -> int:
    return next(_shop_counter)


def connection_body(
    user_id: str, platform: str, credentials: dict[str, str], *, start_sync: bool = False
) -> dict[str, Any]:
    """A POST /connections body. Its first sync is left out by default: most tests drive the
    syncs they are about themselves (a background first sync would race them)."""
    body: dict[str, Any] = {"userId": user_id, "platformCode": platform, "startSync": start_sync}
    body.update(
        {
            k: v
            for k, v in credentials.items()
            if k in ("shopId", "apiKey", "apiSecret", "accessToken", "refreshToken")
        }
    )
    return body


async def alter_connection(
    session_factory: async_sessionmaker[AsyncSession], connection_id: str, **columns: Any
) -> None:
    """Change a stored connection behind the API's back (a revoked secret, a status).
    Secret columns are given in plain text and stored encrypted, as the service stores them."""
    from sqlalchemy import update

    from app.models import MarketplaceConnection

    cipher = CredentialCipher([ENCRYPTION_KEY])
    values = {
        name: cipher.encrypt(value) if name.endswith("_encrypted") else value
        for name, value in columns.items()
    }
    async with session_factory() as session:
        await session.execute(
            update(MarketplaceConnection)
            .where(MarketplaceConnection.id == uuid.UUID(connection_id))
            .values(**values)
        )
        await session.commit()


@pytest.fixture
async def job_context(settings: Settings, redis: ArqRedis) -> AsyncIterator[dict[str, Any]]:
    """What arq hands a job: the worker's context and its Redis."""
    from app.worker_context import WorkerContext

    wc = WorkerContext.create(settings, redis=redis)
    yield {"app": wc, "redis": redis}
    await wc.close()


async def run_burst(settings: Settings) -> None:
    """Run every queued job through a real arq worker, then return."""
    from app.worker import create_worker

    worker = create_worker(settings, burst=True, handle_signals=False, poll_delay=0.01)
    try:
        await worker.async_run()
    finally:
        await worker.close()


@asynccontextmanager
async def running_worker(settings: Settings, **options: Any) -> AsyncIterator[Any]:
    """A real arq worker polling in this event loop until the block ends."""
    from app.worker import create_worker

    worker = create_worker(settings, handle_signals=False, **{"poll_delay": 0.02, **options})
    task = asyncio.create_task(worker.async_run())
    try:
        yield worker
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        # A sync's log says `success` a moment before arq records the job as done: let that
        # finish, or close() cancels it halfway and raises CancelledError.
        running = [job for job in worker.tasks.values() if not job.done()]
        if running:
            await asyncio.wait(running, timeout=10)
        # close() gathers the jobs it cancels (a cron job may have started meanwhile).
        with contextlib.suppress(asyncio.CancelledError):
            await worker.close()
