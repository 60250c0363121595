"""A job asked for again under the same dedupe key after the first one ran must run again
(arq keeps a finished job's id for `keep_result` seconds and refuses a new job with it)."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.jobs.outbox import enqueue
from app.models import MarketplaceSyncLog
from app.products.service import PRODUCT_SYNC_FOLLOW_UP_JOB
from tests.conftest import RunningSandbox, running_worker
from tests.jobs.helpers import eventually
from tests.sync.conftest import connect_shop


async def finished_product_syncs(session_factory: async_sessionmaker[AsyncSession]) -> int:
    async with session_factory() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(MarketplaceSyncLog)
            .where(MarketplaceSyncLog.kind == "products", MarketplaceSyncLog.status == "success")
        )
    return int(count or 0)


async def test_a_second_product_push_follow_up_runs_after_the_first(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, _ = await connect_shop(api, sandbox, "shopee")
    connection_id = connection["id"]
    key = f"{PRODUCT_SYNC_FOLLOW_UP_JOB}:{connection_id}"

    async def ask_for_follow_up() -> None:
        async with session_factory() as session:
            enqueue(session, PRODUCT_SYNC_FOLLOW_UP_JOB, connection_id, dedupe_key=key)
            await session.commit()

    async with running_worker(settings):
        await ask_for_follow_up()
        assert await eventually(lambda: _at_least(session_factory, 1))
        # A later push (another product edited an hour later, or a minute): a new follow-up.
        await ask_for_follow_up()
        assert await eventually(lambda: _at_least(session_factory, 2))
    assert await finished_product_syncs(session_factory) == 2


async def _at_least(session_factory: async_sessionmaker[AsyncSession], count: int) -> bool:
    return await finished_product_syncs(session_factory) >= count
