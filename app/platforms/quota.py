"""Marketplace call quotas shared by every worker and API process.

A marketplace counts calls per app (partner id / app key) and per shop, whatever process makes
them, so the buckets live in Redis: one per app and one per connection, taken together by one
Lua script (refill by elapsed time on Redis's clock, take a token from both or return the
wait). Fair share: while n connections of an app are calling, each connection's bucket refills
at most 1/n of the app's rate, so one shop's backfill cannot take the quota the others need.

If Redis cannot be reached the limiter falls back to the process-local `RateLimiter` (and tries
Redis again a few seconds later): a call is slowed, never failed, by a Redis outage."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.platforms.http import RateLimiter

logger = logging.getLogger("app.platforms.quota")

KEY_PREFIX = "omni:quota:"
# A connection counts towards the fair share while it asked for a slot this recently.
ACTIVE_WINDOW_MS = 2000
REDIS_TIMEOUT_SECONDS = 0.5
REDIS_RETRY_SECONDS = 5.0

# KEYS: connection bucket, app bucket, app's active connections (zset), connection's pause.
# ARGV: connection rate, connection burst, app rate, app burst, connection id, window (ms).
# Returns 0 when a token was taken from both buckets, else the milliseconds to wait.
TAKE_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local paused = redis.call('PTTL', KEYS[4])
if paused > 0 then return paused end
local window = tonumber(ARGV[6])
redis.call('ZADD', KEYS[3], now, ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
redis.call('PEXPIRE', KEYS[3], window * 2)
local active = math.max(1, redis.call('ZCARD', KEYS[3]))
local app_rate = tonumber(ARGV[3])
local app_burst = tonumber(ARGV[4])
local conn_rate = math.min(tonumber(ARGV[1]), app_rate / active)
local conn_burst = math.max(1, math.min(tonumber(ARGV[2]), app_burst / active))

local function level(key, rate, burst)
  local stored = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(stored[1])
  local at = tonumber(stored[2])
  if tokens == nil or at == nil then return burst end
  return math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
end

local conn_tokens = level(KEYS[1], conn_rate, conn_burst)
local app_tokens = level(KEYS[2], app_rate, app_burst)
local wait = 0
if conn_tokens < 1 then wait = math.ceil((1 - conn_tokens) * 1000 / conn_rate) end
if app_tokens < 1 then wait = math.max(wait, math.ceil((1 - app_tokens) * 1000 / app_rate)) end
if wait == 0 then
  conn_tokens = conn_tokens - 1
  app_tokens = app_tokens - 1
end
local ttl = math.ceil(1000 * math.max(conn_burst / conn_rate, app_burst / app_rate)) + window
redis.call('HSET', KEYS[1], 'tokens', tostring(conn_tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('HSET', KEYS[2], 'tokens', tostring(app_tokens), 'at', now)
redis.call('PEXPIRE', KEYS[2], ttl)
return wait
"""


def app_quota_key(platform: str, app_key: str) -> str:
    """The app's identity in Redis keys: a digest, so no app key is readable there."""
    digest = hashlib.sha256(f"{platform}:{app_key}".encode()).hexdigest()[:16]
    return f"{platform}:{digest}"


class RedisRateLimiter(RateLimiter):
    """`RateLimiter` over buckets shared through Redis; its own local bucket (the parent's) is
    the fallback while Redis is unreachable, so it drops in wherever a `RateLimiter` goes."""

    def __init__(
        self,
        redis: Redis,
        *,
        app: str,
        connection_id: uuid.UUID | str,
        calls_per_second: float,
        app_calls_per_second: float,
        burst: int | None = None,
        app_burst: int | None = None,
    ) -> None:
        super().__init__(calls_per_second, burst)
        self.redis = redis
        self.app_rate = app_calls_per_second
        self.app_capacity = float(
            app_burst if app_burst is not None else max(1, round(app_calls_per_second))
        )
        self.connection = str(connection_id)
        # A hash tag keeps one app's keys in one slot, as a Lua script needs on a cluster.
        tag = f"{KEY_PREFIX}{{{app}}}"
        self.keys = [
            f"{tag}:conn:{self.connection}",
            f"{tag}:app",
            f"{tag}:active",
            f"{tag}:pause:{self.connection}",
        ]
        self._script = redis.register_script(TAKE_SCRIPT)
        self._redis_retry_at = 0.0
        self._shared_lock = asyncio.Lock()
        self._pending: set[asyncio.Task[Any]] = set()

    def pause(self, seconds: float) -> None:
        """The platform said "slow down": every process calling this connection waits."""
        super().pause(seconds)
        try:
            task = asyncio.get_running_loop().create_task(self._share_pause(seconds))
        except RuntimeError:
            return  # no loop (a synchronous caller): the local pause still holds
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _share_pause(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                await self.redis.set(self.keys[3], "1", px=max(1, int(seconds * 1000)))
        except (RedisError, OSError, TimeoutError):
            pass  # the local pause still holds; other processes hear the platform themselves

    async def acquire(self) -> float:
        """Wait for a call slot; returns the seconds waited."""
        waited = 0.0
        # One waiter per process polls Redis at a time; the others queue behind it locally.
        async with self._shared_lock:
            while True:
                now = time.monotonic()
                if now < self._paused_until:
                    delay = self._paused_until - now
                elif now < self._redis_retry_at:
                    return waited + await super().acquire()
                else:
                    wait_ms = await self._take()
                    if wait_ms is None:
                        return waited + await super().acquire()
                    if wait_ms <= 0:
                        return waited
                    delay = wait_ms / 1000
                await asyncio.sleep(delay)
                waited += delay

    async def _take(self) -> int | None:
        """0 (taken), the milliseconds to wait, or None when Redis cannot answer."""
        args: list[str | float | int] = [
            self.rate,
            self.capacity,
            self.app_rate,
            self.app_capacity,
            self.connection,
            ACTIVE_WINDOW_MS,
        ]
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                result = await self._script(keys=self.keys, args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            self._redis_retry_at = time.monotonic() + REDIS_RETRY_SECONDS
            logger.warning(
                "shared quota unavailable; limiting this process alone for now",
                extra={"error": type(exc).__name__, "retry_in_seconds": REDIS_RETRY_SECONDS},
            )
            return None
        return int(result)
