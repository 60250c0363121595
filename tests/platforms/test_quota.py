"""The Redis quota: limiters in different processes (here: separate Redis clients and limiter
objects, as two workers would have) share one budget per app and per connection."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from app.platforms.quota import RedisRateLimiter, app_quota_key

# Stamps are taken when acquire() returns, after the grant: a delayed return can make one
# window look a call denser than it was, so each window gets one call and 50 ms of slack.
SLACK_SECONDS = 0.05


@pytest.fixture
async def redis_clients(redis_url: str, clean: None) -> AsyncIterator[list[Redis]]:
    clients = [Redis.from_url(redis_url) for _ in range(4)]
    yield clients
    for client in clients:
        await client.aclose()


def limiter(
    redis: Redis,
    connection: uuid.UUID,
    *,
    rate: float,
    app_rate: float,
    app: str = "shopee-partner-1",
) -> RedisRateLimiter:
    return RedisRateLimiter(
        redis,
        app=app_quota_key("shopee", app),
        connection_id=connection,
        calls_per_second=rate,
        app_calls_per_second=app_rate,
        burst=1,
        app_burst=1,
    )


async def call_times(limiter: RedisRateLimiter, calls: int, stamps: list[float]) -> None:
    for _ in range(calls):
        await limiter.acquire()
        stamps.append(time.monotonic())


def assert_within_rate(stamps: list[float], rate: float, burst: int = 1) -> None:
    """Every window of k consecutive calls spans at least (k - burst - 1) / rate seconds."""
    stamps = sorted(stamps)
    for i in range(len(stamps)):
        for j in range(i + burst + 1, len(stamps)):
            needed = (j - i - burst) / rate
            assert stamps[j] - stamps[i] >= needed - SLACK_SECONDS, (i, j, stamps[j] - stamps[i])


@pytest.mark.parametrize("shared", ["connection", "app"])
async def test_two_workers_together_stay_within_one_quota(
    redis_clients: list[Redis], shared: str
) -> None:
    rate = 40.0
    first = uuid.uuid4()
    # One shop called from two workers, or two shops of one app: either way one budget.
    second = first if shared == "connection" else uuid.uuid4()
    per_connection, per_app = (rate, 1000.0) if shared == "connection" else (1000.0, rate)
    workers = [
        limiter(redis_clients[0], first, rate=per_connection, app_rate=per_app),
        limiter(redis_clients[1], second, rate=per_connection, app_rate=per_app),
    ]
    stamps: list[float] = []
    await asyncio.gather(*(call_times(worker, 20, stamps) for worker in workers))
    assert len(stamps) == 40
    assert_within_rate(stamps, rate)


async def test_a_busy_shop_does_not_starve_another_shop_of_the_same_app(
    redis_clients: list[Redis],
) -> None:
    app_rate = 60.0
    busy, quiet = uuid.uuid4(), uuid.uuid4()
    # The busy shop's backfill runs in three workers, four concurrent calls each.
    busy_workers = [
        limiter(client, busy, rate=1000, app_rate=app_rate) for client in redis_clients[:3]
    ]
    quiet_worker = limiter(redis_clients[3], quiet, rate=1000, app_rate=app_rate)
    counts = {"busy": 0, "quiet": 0}
    stop = asyncio.Event()

    async def caller(worker: RedisRateLimiter, name: str) -> None:
        while not stop.is_set():
            await worker.acquire()
            if not stop.is_set():
                counts[name] += 1

    tasks = [asyncio.create_task(caller(w, "busy")) for w in busy_workers for _ in range(4)]
    tasks.append(asyncio.create_task(caller(quiet_worker, "quiet")))
    await asyncio.sleep(1.0)
    stop.set()
    await asyncio.gather(*tasks)
    total = counts["busy"] + counts["quiet"]
    assert total <= app_rate * 1.0 + 3  # the app's quota still holds
    # Fair share is a half each; first come, first served would leave the quiet shop a quarter.
    assert counts["quiet"] >= 0.4 * total, counts


async def test_a_pause_from_one_worker_holds_every_worker_of_that_shop(
    redis_clients: list[Redis],
) -> None:
    shop = uuid.uuid4()
    first = limiter(redis_clients[0], shop, rate=1000, app_rate=1000)
    second = limiter(redis_clients[1], shop, rate=1000, app_rate=1000)
    other_shop = limiter(redis_clients[2], uuid.uuid4(), rate=1000, app_rate=1000)
    first.pause(0.3)
    await asyncio.sleep(0.02)  # the pause is shared in the background
    started = time.monotonic()
    waited = await second.acquire()
    assert time.monotonic() - started >= 0.2
    assert waited >= 0.2
    assert await other_shop.acquire() < 0.05  # other shops are not held


async def test_redis_unreachable_falls_back_to_the_local_limiter() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    unreachable = Redis.from_url(f"redis://127.0.0.1:{port}/0")
    worker = limiter(unreachable, uuid.uuid4(), rate=50, app_rate=50)
    stamps: list[float] = []
    await call_times(worker, 6, stamps)  # no error reaches the caller
    assert_within_rate(stamps, 50)  # and the process still keeps the connection's rate
    await unreachable.aclose()
