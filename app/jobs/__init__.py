"""The one job runtime: `outbox.enqueue` (a row in the caller's transaction), the relay that
hands committed rows to arq, the job wrapper and typed context, and the retry policy."""

from __future__ import annotations

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
