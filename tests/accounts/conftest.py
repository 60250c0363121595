from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts.service import create_user

PASSWORD = "correct horse battery"


async def make_user(
    session_factory: async_sessionmaker[AsyncSession], email: str, password: str = PASSWORD
) -> str:
    async with session_factory() as session:
        user = await create_user(session, email, password)
        await session.commit()
        return str(user.id)


ClientAt = Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def client_at(api: httpx.AsyncClient) -> ClientAt:
    """A client of the same app whose requests come from the given address."""

    @asynccontextmanager
    async def at(address: str) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=api.app, client=(address, 40000))  # type: ignore[attr-defined]
        async with httpx.AsyncClient(transport=transport, base_url="http://omni.test") as client:
            yield client

    return at


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/auth/login", json={"email": email, "password": password})
