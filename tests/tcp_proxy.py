"""A loopback TCP proxy a test can cut and restore, so a shared server (Redis, PostgreSQL) looks
down to the code under test while it keeps running for everyone else."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

from tests.conftest import free_port


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target_host`:`target_port`.

    `close()` stops listening and aborts every open connection, as a crashed server looks to
    its clients (connections reset, new ones refused); `start()` listens again on the same port.
    """

    def __init__(
        self, target_host: str = "127.0.0.1", target_port: int = 6379, port: int | None = None
    ) -> None:
        self.target = (target_host, target_port)
        # A unix-socket server (the embedded Redis): forwarded to from the loopback port.
        self.target_path: str | None = None
        self.port = port or free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()

    @classmethod
    def to_url(cls, url: str) -> TcpProxy:
        """A proxy to the host and port of `url` (redis://, postgresql://, ...)."""
        parts = urlsplit(url)
        if parts.scheme == "unix":
            proxy = cls()
            proxy.target_path = parts.path
            return proxy
        return cls(parts.hostname or "127.0.0.1", parts.port or 6379)

    def url(self, url: str) -> str:
        """`url` with its host and port replaced by this proxy's (user, path and query kept)."""
        parts = urlsplit(url)
        if parts.scheme == "unix":  # redis over a socket: the same database, over TCP
            db = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p).get("db", "0")
            return f"redis://127.0.0.1:{self.port}/{db}"
        credentials = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return urlunsplit(parts._replace(netloc=f"{credentials}127.0.0.1:{self.port}"))

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> TcpProxy:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            if self.target_path is not None:
                server_r, server_w = await asyncio.open_unix_connection(self.target_path)
            else:
                server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        if self._server is None:  # closed while connecting upstream
            client_w.transport.abort()
            server_w.transport.abort()
            return
        self._writers |= {client_w, server_w}
        for reader, writer in ((client_r, server_w), (server_r, client_w)):
            pipe = asyncio.ensure_future(self._pipe(reader, writer))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        # One side hung up: close the other so the client sees the connection end too.
        self._writers.discard(writer)
        writer.close()
