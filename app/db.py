"""Engine and sessions. One session and one transaction per request or job; the edge commits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from app.config import Settings
from app.errors import DatabaseUnavailable, is_database_unavailable


def make_engine(database_url: str, *, pool_size: int = 20) -> AsyncEngine:
    engine = create_async_engine(
        database_url,
        # Enough for the concurrent requests one process serves without opening connections
        # under load; a pre-ping would cost a round trip per request, so dead connections are
        # instead recycled by age and invalidated when they fail.
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        # Statement parameters hold Fernet ciphertexts and buyers' addresses: an error message
        # (and so a log line or a stored error) must never carry them.
        hide_parameters=True,
        connect_args={"server_settings": {"application_name": "omni-sales"}},
    )
    event.listen(engine.sync_engine, "do_connect", _connect_or_unavailable)
    return engine


def _connect_or_unavailable(
    dialect: Dialect, record: ConnectionPoolEntry, cargs: Any, cparams: Any
) -> Any:
    # A refused or timed-out connect surfaces as a bare OSError that nothing later can tell
    # from any other OSError: name it here, where it is known to be the database.
    try:
        return dialect.connect(*cargs, **cparams)
    except Exception as exc:
        if is_database_unavailable(exc, connecting=True):
            raise DatabaseUnavailable() from exc
        raise


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


class Database:
    """Holds the engine and session factory of one process."""

    def __init__(self, settings: Settings) -> None:
        if settings.database_url is None:
            raise RuntimeError("DATABASE_URL is not set")
        self.engine = make_engine(settings.database_url)
        self.sessionmaker = make_sessionmaker(self.engine)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session:
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
