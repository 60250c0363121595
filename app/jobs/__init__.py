"""Jobs: enqueued only after the transaction that asked for them commits; they carry ids."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from arq.connections import ArqRedis, RedisSettings


def redis_settings(url: str) -> RedisSettings:
    return RedisSettings.from_dsn(url)


def lazy_redis(url: str) -> ArqRedis:
    """A client that connects on first use: the API starts (and `/ready` reports) while Redis
    is down, instead of failing to boot."""
    # Short socket timeouts: a hung Redis answers the request with 503 quickly instead of
    # holding it (and its database transaction) open.
    client: ArqRedis = ArqRedis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    return client


@dataclass(slots=True)
class PendingJob:
    function: str
    args: tuple[Any, ...]
    job_id: str | None = None


@dataclass
class JobBuffer:
    """Jobs asked for during one unit of work; sent after commit, dropped on rollback."""

    pending: list[PendingJob] = field(default_factory=list)

    def add(self, function: str, *args: Any, job_id: str | None = None) -> None:
        self.pending.append(PendingJob(function, args, job_id))

    async def flush(self, redis: ArqRedis | None) -> None:
        jobs, self.pending = self.pending, []
        if redis is None:
            return
        for job in jobs:
            await redis.enqueue_job(job.function, *job.args, _job_id=job.job_id)

    def clear(self) -> None:
        self.pending.clear()
