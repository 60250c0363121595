"""What every job gets: the process's database, cipher and marketplace gateway."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypedDict, cast

import httpx
from arq.connections import ArqRedis
from arq.typing import WorkerCoroutine
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.crypto import CredentialCipher
from app.db import Database
from app.platforms.http import RateLimiter
from app.platforms.quota import RedisRateLimiter, app_quota_key
from app.platforms.registry import PlatformGateway
from app.uow import UnitOfWork, unit_of_work


@dataclass
class WorkerContext:
    settings: Settings
    database: Database
    cipher: CredentialCipher
    http: httpx.AsyncClient
    gateway: PlatformGateway
    redis: ArqRedis | None = None
    # One call budget per connection in this process, shared by every job that calls it.
    limiters: dict[uuid.UUID, RateLimiter] = field(default_factory=dict)
    # Set when the worker is told to stop: running syncs end after their current batch.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def limiter_for(
        self, connection_id: uuid.UUID, *, platform: str | None = None, app_key: str | None = None
    ) -> RateLimiter:
        """The connection's call budget: shared by every process through Redis when the app is
        known (its own local bucket takes over while Redis is down)."""
        limiter = self.limiters.get(connection_id)
        if limiter is None:
            tuning = self.settings.clients
            if self.redis is not None and platform and app_key:
                limiter = RedisRateLimiter(
                    self.redis,
                    app=app_quota_key(platform, app_key),
                    connection_id=connection_id,
                    calls_per_second=tuning.calls_per_second,
                    app_calls_per_second=tuning.app_calls_per_second or 5 * tuning.calls_per_second,
                )
            else:
                limiter = RateLimiter(tuning.calls_per_second)
            self.limiters[connection_id] = limiter
        return limiter

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        return self.database.sessionmaker

    @classmethod
    def create(cls, settings: Settings, redis: ArqRedis | None = None) -> WorkerContext:
        http = httpx.AsyncClient(timeout=settings.clients.timeout_seconds)
        return cls(
            settings=settings,
            database=Database(settings),
            cipher=CredentialCipher(
                [k.get_secret_value() for k in settings.credentials_encryption_keys]
            ),
            http=http,
            gateway=PlatformGateway(settings, http_client=http),
            redis=redis,
        )

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        """The job edge's transaction: commits at the end, then sends the jobs it queued."""
        async for uow in unit_of_work(self.sessionmaker, self.redis):
            yield uow

    async def close(self) -> None:
        await self.http.aclose()
        await self.database.dispose()


class JobContext(TypedDict):
    """What arq hands every job: our context under "app", plus arq's own keys."""

    app: WorkerContext
    redis: ArqRedis
    job_id: str
    job_try: int


def arq_job(function: Any) -> WorkerCoroutine:
    """A job taking the typed JobContext, as arq's typing wants it (a plain dict context)."""
    return cast(WorkerCoroutine, function)
