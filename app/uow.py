"""The request edge's unit of work: one session, committed before the response is sent."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from arq.connections import ArqRedis
from fastapi import Depends, Request
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import QueueUnavailable
from app.jobs import JobBuffer

logger = logging.getLogger("app.uow")


class UnitOfWork:
    def __init__(self, session: AsyncSession, redis: ArqRedis | None) -> None:
        self.session = session
        self.redis = redis
        self.jobs = JobBuffer()

    def enqueue_after_commit(self, function: str, *args: Any, job_id: str | None = None) -> None:
        self.jobs.add(function, *args, job_id=job_id)

    async def commit(self) -> None:
        """Commit, then send the jobs. With jobs to send and Redis unreachable, nothing is
        committed (a running sync log with no job would block the connection): 503."""
        if self.jobs.pending and self.redis is not None:
            try:
                await self.redis.ping()
            except (RedisError, OSError) as exc:
                await self.rollback()
                raise QueueUnavailable() from exc
        await self.session.commit()
        try:
            await self.jobs.flush(self.redis)
        except (RedisError, OSError):
            # Redis went away between the ping and the send. What was committed is safe: the
            # worker's recovery sweep finds a sync log with no live runner and re-queues it.
            logger.warning("jobs not sent after commit; the recovery sweep will re-queue them")

    async def rollback(self) -> None:
        self.jobs.clear()
        await self.session.rollback()


async def unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession], redis: ArqRedis | None
) -> AsyncIterator[UnitOfWork]:
    async with sessionmaker() as session:
        uow = UnitOfWork(session, redis)
        try:
            yield uow
        except BaseException:
            await uow.rollback()
            raise
        await uow.commit()


async def _request_uow(request: Request) -> AsyncIterator[UnitOfWork]:
    async for uow in unit_of_work(request.app.state.sessionmaker, request.app.state.redis):
        yield uow


# scope="function": the commit happens before the response is sent, so a client never hears
# "created" for a row that then fails to commit.
UowDep = Annotated[UnitOfWork, Depends(_request_uow, scope="function")]
