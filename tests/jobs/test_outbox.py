"""The job runtime against real PostgreSQL, Redis and a real worker: a job exists exactly when
its transaction commits, dedupe coalesces only jobs not yet started, relays never send one row
twice, a killed worker's job is re-driven after its lease, and retries follow the policy."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.jobs.outbox import enqueue
from app.jobs.relay import Relay
from app.models import JobOutbox
from tests.conftest import ENCRYPTION_KEY, JWT_SECRET, RunningSandbox, make_settings
from tests.jobs.helpers import ATTEMPTS, RAN, RELEASE, STARTED, eventually, jobs_worker

REPOSITORY = Path(__file__).resolve().parents[2]


async def rows(session_factory: async_sessionmaker[AsyncSession]) -> list[JobOutbox]:
    async with session_factory() as session:
        return list((await session.scalars(select(JobOutbox).order_by(JobOutbox.id))).all())


async def listed(redis: ArqRedis, key: str) -> list[str]:
    return [item.decode() for item in await redis.lrange(key, 0, -1)]


async def ran(redis: ArqRedis) -> list[str]:
    return await listed(redis, RAN)


async def test_a_committed_job_runs_once_and_its_row_ends_finished(
    clean: None,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
) -> None:
    async with session_factory() as session:
        enqueue(session, "record", "a")
        await session.commit()
    async with jobs_worker(settings):
        assert await eventually(lambda: _finished(session_factory, 1))
    assert await ran(redis) == ["a:1"]
    [row] = await rows(session_factory)
    assert (row.function, row.args, row.status, row.attempts, row.sends) == (
        "record",
        ["a"],
        "finished",
        1,
        1,
    )


async def _finished(session_factory: async_sessionmaker[AsyncSession], count: int) -> bool:
    return sum(r.status in ("finished", "failed") for r in await rows(session_factory)) >= count


async def test_a_rolled_back_transaction_leaves_no_job(
    clean: None,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
) -> None:
    async with session_factory() as session:
        enqueue(session, "record", "flushed")
        await session.flush()
        enqueue(session, "record", "unflushed")
        await session.rollback()
    assert await rows(session_factory) == []
    async with session_factory() as session:
        enqueue(session, "record", "after")
        await session.commit()
    async with jobs_worker(settings):
        assert await eventually(lambda: _finished(session_factory, 1))
    assert await ran(redis) == ["after:1"]


@pytest.mark.parametrize("autoflush", [True, False], ids=["autoflush", "app-sessions"])
async def test_a_rolled_back_savepoint_drops_only_its_own_jobs(
    clean: None,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
    autoflush: bool,
) -> None:
    # The app's sessions do not autoflush; the outer jobs must survive either way.
    sessions = async_sessionmaker(session_factory.kw["bind"], autoflush=autoflush)
    async with sessions() as session:
        enqueue(session, "record", "outer-before")
        with pytest.raises(RuntimeError):
            async with session.begin_nested():
                enqueue(session, "record", "inner-flushed")
                await session.flush()
                enqueue(session, "record", "inner-unflushed")
                raise RuntimeError("this step failed")
        async with session.begin_nested():
            enqueue(session, "record", "kept-savepoint")
        enqueue(session, "record", "outer-after")
        await session.commit()
    assert [r.args[0] for r in await rows(session_factory)] == [
        "outer-before",
        "kept-savepoint",
        "outer-after",
    ]
    async with jobs_worker(settings):
        assert await eventually(lambda: _finished(session_factory, 3))
    assert sorted(await ran(redis)) == ["kept-savepoint:1", "outer-after:1", "outer-before:1"]


async def test_dedupe_coalesces_only_jobs_that_have_not_started(
    clean: None,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
) -> None:
    async def ask() -> None:
        async with session_factory() as session:
            enqueue(session, "hold", "k", dedupe_key="hold:k")
            await session.commit()

    async with session_factory() as session:
        enqueue(session, "hold", "k", dedupe_key="hold:k")
        enqueue(session, "hold", "k", dedupe_key="hold:k")  # twice in one transaction
        await session.commit()
    await ask()  # the first is still waiting: a no-op
    assert len(await rows(session_factory)) == 1
    async with jobs_worker(settings):
        assert await eventually(lambda: _listed_at_least(redis, STARTED, 1))
        # The first has started: work arriving now must get a job of its own...
        await ask()
        await ask()  # ...and that one, waiting, coalesces the next request
        statuses = sorted(r.status for r in await rows(session_factory))
        assert statuses in (["pending", "started"], ["sent", "started"]), statuses
        await redis.set(RELEASE, "1")
        assert await eventually(lambda: _finished(session_factory, 2))
    assert await ran(redis) == ["k:1", "k:1"]
    assert [r.status for r in await rows(session_factory)] == ["finished", "finished"]


async def _listed_at_least(redis: ArqRedis, key: str, count: int) -> bool:
    return len(await listed(redis, key)) >= count


async def test_two_relays_never_send_one_row_twice(
    clean: None,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
) -> None:
    async with session_factory() as session:
        for n in range(300):
            enqueue(session, "record", str(n))
        await session.commit()
    relays = [
        Relay(
            session_factory,
            redis,
            lease_seconds=30,
            interval_seconds=0.5,
            keep_done_hours=1,
            max_attempts=3,
        )
        for _ in range(3)
    ]
    sent: list[int] = []
    for _ in range(3):
        sent += await asyncio.gather(*(relay.flush() for relay in relays))
    assert sum(sent) == 300
    assert await redis.zcard("arq:queue") == 300
    assert {(r.status, r.sends) for r in await rows(session_factory)} == {("sent", 1)}


async def test_retries_follow_the_policy(
    clean: None,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
) -> None:
    attempts = settings.clients.max_attempts
    async with session_factory() as session:
        enqueue(session, "flaky", "twice", "2")  # transient twice, then fine
        enqueue(session, "flaky", "always", "99")  # transient every time: capped
        enqueue(session, "rate_limited", "wait", "1.0")  # the platform says "in 1 s"
        enqueue(session, "broken", "bad")  # permanent: once
        await session.commit()
    async with jobs_worker(settings):
        assert await eventually(lambda: _finished(session_factory, 4), seconds=40)
    by_token = {r.args[0]: r for r in await rows(session_factory)}
    assert (by_token["twice"].status, by_token["twice"].attempts) == ("finished", 3)
    assert (by_token["always"].status, by_token["always"].attempts) == ("failed", attempts)
    assert by_token["always"].last_error == "test: the marketplace is busy"
    assert (by_token["bad"].status, by_token["bad"].attempts) == ("failed", 1)
    assert by_token["bad"].last_error == "the order payload is not valid"
    assert (by_token["wait"].status, by_token["wait"].attempts) == ("finished", 2)

    tried: dict[str, list[float]] = {}
    for item in await listed(redis, ATTEMPTS):
        token, _, at = item.split(":", 2)
        tried.setdefault(token, []).append(float(at))
    assert len(tried["always"]) == attempts
    assert len(tried["bad"]) == 1
    first, second = tried["wait"]
    assert second - first >= 1.0  # not before the platform's Retry-After
    assert sorted(await ran(redis)) == ["twice:3", "wait:2"]


async def test_a_killed_workers_job_is_redriven_by_the_next_worker_after_its_lease(
    clean: None,
    sandbox: RunningSandbox,
    database_url: str,
    redis_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
) -> None:
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "AUTH_JWT_SECRET": JWT_SECRET,
        "CREDENTIALS_ENCRYPTION_KEYS": ENCRYPTION_KEY,
        "JOB_LEASE_SECONDS": "3",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(REPOSITORY),
        **sandbox.settings,
    }
    async with session_factory() as session:
        enqueue(session, "hold", "survivor")
        await session.commit()
    with tempfile.TemporaryFile() as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.jobs.helpers",
            env=environment,
            cwd=REPOSITORY,
            stdout=log,
            stderr=log,
        )
        try:
            started = await eventually(lambda: _listed_at_least(redis, STARTED, 1), seconds=30)
            log.seek(0)
            assert started, log.read().decode(errors="replace")[-3000:]
        finally:
            process.send_signal(signal.SIGKILL)
            await process.wait()
    [row] = await rows(session_factory)
    assert (row.status, row.attempts) == ("started", 1)

    await redis.set(RELEASE, "1")
    settings = make_settings(database_url, redis_url, sandbox, JOB_LEASE_SECONDS=3)
    async with jobs_worker(settings):
        # Lease 3 s, then the relay's next lease check: well within the 60 s promised.
        assert await eventually(lambda: _finished(session_factory, 1), seconds=30)
    assert await listed(redis, STARTED) == ["survivor:1", "survivor:2"]
    assert await ran(redis) == ["survivor:2"]
    [row] = await rows(session_factory)
    assert (row.status, row.attempts, row.sends) == ("finished", 2, 2)


async def test_a_request_that_asks_for_jobs_with_redis_down_writes_nothing(
    clean: None,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    from app.errors import QueueUnavailable
    from app.jobs import lazy_redis
    from app.models import InventorySku
    from app.uow import UnitOfWork
    from tests.conftest import free_port

    down = lazy_redis(f"redis://127.0.0.1:{free_port()}/0")
    try:
        async with session_factory() as session:
            uow = UnitOfWork(session, down)
            session.add(InventorySku(user_id="u1", sku="A", available=1))
            enqueue(session, "record", "lost")
            with pytest.raises(QueueUnavailable):
                await uow.commit()
        async with session_factory() as session:
            # No job asked for: Redis is not needed, the commit goes through.
            uow = UnitOfWork(session, down)
            session.add(InventorySku(user_id="u1", sku="B", available=1))
            await uow.commit()
    finally:
        await down.aclose()
    assert await rows(session_factory) == []
    async with session_factory() as session:
        skus = (await session.scalars(select(InventorySku.sku))).all()
    assert skus == ["B"]


class SlowToCommit:
    """Redis as a relay sees it, but each send is followed by a pause before the relay can
    commit `sent`: a worker picks the job up in between."""

    def __init__(self, redis: ArqRedis) -> None:
        self.redis = redis

    async def enqueue_job(self, *args: Any, **kwargs: Any) -> Any:
        job = await self.redis.enqueue_job(*args, **kwargs)
        await asyncio.sleep(1.0)
        return job


async def test_a_job_picked_up_before_its_relay_commits_still_runs(
    clean: None,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
) -> None:
    async with session_factory() as session:
        enqueue(session, "record", "early")
        await session.commit()
    relay = Relay(
        session_factory,
        SlowToCommit(redis),  # type: ignore[arg-type]
        lease_seconds=30,
        interval_seconds=0.5,
        keep_done_hours=1,
        max_attempts=3,
    )
    sending = asyncio.create_task(relay.flush())
    async with jobs_worker(settings):
        assert await sending == 1
        # Well before the 30 s lease would re-drive a job skipped as "not sent yet".
        assert await eventually(lambda: _finished(session_factory, 1), seconds=10)
    assert await ran(redis) == ["early:1"]
