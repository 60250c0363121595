"""With PostgreSQL unreachable every route answers 503 `database_unavailable` with
Retry-After, and the API recovers by itself once the database is back. The shared server is
never stopped: the API reaches it through a loopback TCP proxy that the test cuts."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.conftest import auth_headers, free_port, make_settings, running_app

USER = "db-down-seller"


class LoopbackProxy:
    """Forwards a loopback port to the database; `cut()` drops every connection and stops
    listening, as a crashed server would look; `restore()` listens again on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        self._writers |= {client_w, server_w}
        for reader, writer in ((client_r, server_w), (server_r, client_w)):
            task = asyncio.ensure_future(self._pipe(reader, writer))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()


def _through(database_url: str, port: int) -> str:
    parts = urlsplit(database_url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


@pytest.fixture
async def proxy(database_url: str) -> LoopbackProxy:
    target = urlsplit(database_url)
    if target.hostname is None:
        # The embedded server listens on a unix socket only; CI's is on TCP.
        pytest.skip("needs a PostgreSQL reachable over TCP (TEST_DATABASE_URL)")
    running = LoopbackProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await running.restore()
    return running


async def _answers(api: httpx.AsyncClient) -> list[httpx.Response]:
    """A list route, a by-id route, a POST, and the token-free platform list."""
    headers = auth_headers(USER)
    return [
        await api.get("/api/marketplace/connections", headers=headers),
        await api.get("/api/marketplace/orders", headers=headers),
        await api.get(f"/api/marketplace/connections/{uuid.uuid4()}", headers=headers),
        await api.get("/api/marketplace/orders/1", headers=headers),
        await api.post(
            "/api/marketplace/sync-orders",
            json={"connectionId": str(uuid.uuid4()), "userId": USER},
            headers=headers,
        ),
        await api.get("/api/marketplace/platforms"),
    ]


def _assert_unavailable(responses: list[httpx.Response]) -> None:
    for response in responses:
        assert response.status_code == 503, (response.request.url, response.text)
        assert response.json()["error"]["code"] == "database_unavailable"
        assert int(response.headers["Retry-After"]) > 0
        assert response.headers["X-Request-ID"]


async def test_every_route_is_503_while_the_database_is_down_and_recovers(
    database_url: str, redis_url: str, clean: None, proxy: LoopbackProxy
) -> None:
    settings = make_settings(_through(database_url, proxy.port), redis_url)
    async with running_app(settings) as api:
        before = [r.status_code for r in await _answers(api)]
        assert before == [200, 200, 404, 404, 404, 200]

        await proxy.cut()
        # Twice: first on the pooled connections that just died, then on refused connects.
        _assert_unavailable(await _answers(api))
        _assert_unavailable(await _answers(api))
        ready = await api.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"].startswith("unavailable")

        await proxy.restore()
        after = [r.status_code for r in await _answers(api)]
        assert after == before
        assert (await api.get("/ready")).status_code == 200
    await proxy.cut()


async def test_a_database_that_never_answered_is_503(
    database_url: str, redis_url: str, clean: None
) -> None:
    closed_port = free_port()
    settings = make_settings(_through(database_url, closed_port), redis_url)
    async with running_app(settings) as api:
        _assert_unavailable(await _answers(api))
