"""Job functions the job-runtime tests run through a real worker, and a worker process main
(`python -m tests.jobs.helpers`) that registers them, for the SIGKILL test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from app.config import Settings, get_settings
from app.platforms.errors import RateLimitedError, TransientError
from app.worker import FUNCTIONS, run_worker_until_stopped
from tests.conftest import running_worker

RAN = "jobs-test:ran"
STARTED = "jobs-test:started"
RELEASE = "jobs-test:release"
ATTEMPTS = "jobs-test:attempts"


async def record(ctx: dict[str, Any], token: str) -> str:
    await ctx["redis"].rpush(RAN, f"{token}:{ctx['job_try']}")
    return token


async def hold(ctx: dict[str, Any], token: str) -> str:
    """Says it started, then waits for RELEASE before it records its run."""
    await ctx["redis"].rpush(STARTED, f"{token}:{ctx['job_try']}")
    while not await ctx["redis"].exists(RELEASE):
        await asyncio.sleep(0.05)
    await ctx["redis"].rpush(RAN, f"{token}:{ctx['job_try']}")
    return token


async def flaky(ctx: dict[str, Any], token: str, failures: str) -> str:
    """Fails with a transient error on its first `failures` attempts."""
    await ctx["redis"].rpush(ATTEMPTS, f"{token}:{ctx['job_try']}:{time.time()}")
    if ctx["job_try"] <= int(failures):
        raise TransientError("the marketplace is busy", platform="test")
    await ctx["redis"].rpush(RAN, f"{token}:{ctx['job_try']}")
    return token


async def rate_limited(ctx: dict[str, Any], token: str, retry_after: str) -> str:
    """Rate limited on its first attempt, with the platform's Retry-After."""
    await ctx["redis"].rpush(ATTEMPTS, f"{token}:{ctx['job_try']}:{time.time()}")
    if ctx["job_try"] == 1:
        raise RateLimitedError("slow down", platform="test", retry_after=float(retry_after))
    await ctx["redis"].rpush(RAN, f"{token}:{ctx['job_try']}")
    return token


async def broken(ctx: dict[str, Any], token: str) -> str:
    await ctx["redis"].rpush(ATTEMPTS, f"{token}:{ctx['job_try']}:{time.time()}")
    raise ValueError("the order payload is not valid")


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 20.0) -> bool:
    """Whether `check` comes true within `seconds` (a bound against hanging, not a timing)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


TEST_FUNCTIONS: list[Any] = [record, hold, flaky, rate_limited, broken]


@asynccontextmanager
async def jobs_worker(settings: Settings) -> AsyncIterator[Any]:
    async with running_worker(
        settings, functions=[*FUNCTIONS, *TEST_FUNCTIONS], cron_jobs=[], poll_delay=0.01
    ) as worker:
        yield worker


async def _main() -> None:
    await run_worker_until_stopped(
        get_settings(), asyncio.Event(), functions=[*FUNCTIONS, *TEST_FUNCTIONS], cron_jobs=[]
    )


if __name__ == "__main__":
    asyncio.run(_main())
