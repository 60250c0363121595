"""The request edge's unit of work: one session, committed before the response is sent."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

from arq.connections import ArqRedis
from fastapi import Depends, Request
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import QueueUnavailable
from app.jobs.outbox import has_new_jobs

if TYPE_CHECKING:
    from app.jobs.relay import Relay

logger = logging.getLogger("app.uow")


class UnitOfWork:
    def __init__(
        self, session: AsyncSession, redis: ArqRedis | None, relay: Relay | None = None
    ) -> None:
        self.session = session
        # Set for a request: its jobs must be able to reach a worker (INTERFACE "Queue down").
        self.redis = redis
        self.relay = relay

    async def commit(self) -> None:
        """Commit; the jobs asked for are outbox rows of this commit, sent to arq right after
        it. A request that asked for jobs while Redis is unreachable commits nothing and
        answers 503 (a running sync log that no worker can hear of would block its
        connection)."""
        if self.redis is not None and has_new_jobs(self.session):
            try:
                await self.redis.ping()
            except (RedisError, OSError) as exc:
                await self.rollback()
                raise QueueUnavailable() from exc
        await self.session.commit()
        if self.relay is not None:
            try:
                await self.relay.flush()
            except Exception as exc:  # the relay's poll sends them instead
                logger.warning(
                    "jobs not sent right after commit; the relay's next pass sends them",
                    extra={"error": type(exc).__name__},
                )

    async def rollback(self) -> None:
        await self.session.rollback()


async def unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis | None,
    *,
    relay: Relay | None = None,
) -> AsyncIterator[UnitOfWork]:
    async with sessionmaker() as session:
        uow = UnitOfWork(session, redis, relay)
        try:
            yield uow
        except BaseException:
            await uow.rollback()
            raise
        await uow.commit()


async def _request_uow(request: Request) -> AsyncIterator[UnitOfWork]:
    state = request.app.state
    async for uow in unit_of_work(
        state.sessionmaker, state.redis, relay=getattr(state, "relay", None)
    ):
        yield uow


# scope="function": the commit happens before the response is sent, so a client never hears
# "created" for a row that then fails to commit.
UowDep = Annotated[UnitOfWork, Depends(_request_uow, scope="function")]
