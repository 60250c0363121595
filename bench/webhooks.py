"""Webhook intake: signed Shopee pushes from concurrent senders against one API process, beside
a bare Starlette + asyncpg handler doing the same verify-and-insert-if-new (the floor).
Figures are printed, none asserted.

    python bench/webhooks.py                    # 16 senders, 30 s per server
    python bench/webhooks.py --duration 10 --senders 16

Each server is one uvicorn process on a loopback port. The senders are raw keep-alive HTTP/1.1
connections (an HTTP client library would cost more CPU than the servers under test). After
the API run an `omni-sales worker` drains the queue against a sandbox Shopee shop, and the
events stored and processed are compared with those sent. PostgreSQL: BENCH_DATABASE_URL
(default `omni_bench_webhooks` on the local server, rebuilt by the migrations); Redis:
BENCH_REDIS_URL (default db 15 on the local server, flushed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from app.crypto import CredentialCipher  # noqa: E402

DEFAULT_DB = "postgresql+asyncpg://root@127.0.0.1:5432/omni_bench_webhooks"
DEFAULT_REDIS = "redis://127.0.0.1:6379/15"
JWT_KEY = "bench-key-" + "x" * 33
PUSH_PATH = "/api/webhooks/marketplace"
SHOP_ID = 771_000_001
PARTNER_ID = 2_771_001
PARTNER_KEY = "bench-partner-key-" + "k" * 46
ORDERS = 2_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def spawn(command: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
    return subprocess.Popen(command, **kwargs)


def stop(process: subprocess.Popen[Any]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- child processes ------------------------------------------------------------------------


def serve_sandbox(port: int) -> None:
    """The Shopee sandbox with one seeded shop; prints its credentials and order ids."""
    import uvicorn

    from app.sandbox import shopee

    state = shopee.ShopeeSandbox()
    credentials = state.add_shop(
        shop_id=SHOP_ID,
        seed="bench-webhooks",
        order_count=ORDERS,
        days=30,
        partner_id=PARTNER_ID,
        partner_key=PARTNER_KEY,
    )
    shop = state.shops[SHOP_ID]
    credentials["orderIds"] = [shop.order_sn(i) for i in range(ORDERS)]  # type: ignore[assignment]
    print(json.dumps(credentials), flush=True)
    uvicorn.run(
        shopee.create_app(state), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )


def floor_app(database_url: str, partner_key: str) -> Any:
    """The least a correct receiver does: raw body, JSON, the owner's row, HMAC, insert-if-new."""
    import asyncpg  # type: ignore[import-untyped]
    import orjson
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    pool: Any = None
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal pool
        pool = await asyncpg.create_pool(dsn, min_size=10, max_size=10)
        yield
        await pool.close()

    async def receive(request: Request) -> Response:
        body = await request.body()
        document = orjson.loads(body)
        shop_id = str(document["shop_id"])
        async with pool.acquire() as conn:
            owner = await conn.fetchrow(
                "SELECT id, user_id FROM marketplace_connections "
                "WHERE platform_code = 'shopee' AND shop_id = $1",
                shop_id,
            )
            url = f"http://{request.headers['host']}{request.url.path}".encode()
            expected = hmac.new(partner_key.encode(), url + b"|" + body, hashlib.sha256)
            if owner is None or not hmac.compare_digest(
                expected.hexdigest().encode(), request.headers.get("authorization", "").encode()
            ):
                return Response(status_code=401)
            data = document["data"]
            await conn.execute(
                "INSERT INTO marketplace_webhooks (platform_code, user_id, connection_id, "
                "event_type, dedupe_key, payload, status) "
                "VALUES ('shopee', $1, $2, 'order_status', $3, $4::jsonb, 'ignored') "
                "ON CONFLICT (connection_id, dedupe_key) DO NOTHING",
                owner["user_id"],
                owner["id"],
                f"floor:{data['ordersn']}:{data['status']}:{data['update_time']}",
                body.decode(),
            )
        return Response(status_code=200)

    return Starlette(routes=[Route(PUSH_PATH, receive, methods=["POST"])], lifespan=lifespan)


def serve_floor(port: int, database_url: str) -> None:
    import uvicorn

    uvicorn.run(
        floor_app(database_url, PARTNER_KEY),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )


# --- set-up ---------------------------------------------------------------------------------


async def prepare_database(url: str) -> None:
    admin = create_async_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    name = url.rsplit("/", 1)[1]
    async with admin.connect() as conn:
        exists = await conn.scalar(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        )
        if not exists:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


async def create_connection(url: str, fernet_key: str, credentials: dict[str, Any]) -> None:
    from app.models import MarketplaceConnection

    cipher = CredentialCipher([fernet_key])
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(
            MarketplaceConnection.__table__.insert().values(
                id=uuid.uuid4(),
                user_id="bench",
                platform_code="shopee",
                shop_id=credentials["shopId"],
                shop_name="bench",
                api_key_encrypted=cipher.encrypt(credentials["apiKey"]),
                api_secret_encrypted=cipher.encrypt(credentials["apiSecret"]),
                access_token_encrypted=cipher.encrypt(credentials["accessToken"]),
                refresh_token_encrypted=cipher.encrypt(credentials["refreshToken"]),
            )
        )
    await engine.dispose()


async def flush_redis(url: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    await client.flushdb()
    await client.aclose()


async def count_events(url: str, prefix: str) -> dict[str, int]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT status, count(*) FROM marketplace_webhooks "
                "WHERE dedupe_key LIKE :prefix GROUP BY status"
            ),
            {"prefix": prefix + "%"},
        )
        counts = {str(status): int(n) for status, n in rows}
    await engine.dispose()
    return counts


# --- senders --------------------------------------------------------------------------------


class Sequence:
    def __init__(self, order_ids: list[str]) -> None:
        self.order_ids = order_ids
        self.next = 0

    def body(self) -> bytes:
        self.next += 1
        order_sn = self.order_ids[self.next % len(self.order_ids)]
        payload = {
            "data": {
                "items": [],
                "ordersn": order_sn,
                "status": "READY_TO_SHIP",
                "completed_scenario": "",
                "update_time": 1_700_000_000 + self.next,  # each push a new event
            },
            "shop_id": SHOP_ID,
            "code": 3,
            "timestamp": int(time.time()),
        }
        return json.dumps(payload, separators=(",", ":")).encode()


async def sender(
    port: int, sequence: Sequence, until: float, latencies: list[float], statuses: dict[int, int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    host = f"127.0.0.1:{port}"
    url = f"http://{host}{PUSH_PATH}".encode()
    try:
        while time.monotonic() < until:
            body = sequence.body()
            signature = hmac.new(PARTNER_KEY.encode(), url + b"|" + body, hashlib.sha256)
            head = (
                f"POST {PUSH_PATH} HTTP/1.1\r\nHost: {host}\r\n"
                f"Content-Type: application/json\r\nAuthorization: {signature.hexdigest()}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            started = time.perf_counter()
            writer.write(head + body)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            status = int(status_line.split()[1])
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def load(port: int, order_ids: list[str], senders: int, duration: float) -> dict[str, Any]:
    sequence = Sequence(order_ids)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    started = time.monotonic()
    until = started + duration
    await asyncio.gather(
        *(sender(port, sequence, until, latencies, statuses) for _ in range(senders))
    )
    elapsed = time.monotonic() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "sent": len(latencies),
        "accepted": statuses.get(200, 0),
        "statuses": statuses,
        "rate": statuses.get(200, 0) / elapsed,
        "p50": pct(0.50),
        "p99": pct(0.99),
    }


def report(name: str, result: dict[str, Any]) -> None:
    print(
        f"{name:<6} sent {result['sent']:>7}  accepted/s {result['rate']:>8.0f}  "
        f"p50 {result['p50']:6.2f} ms  p99 {result['p99']:6.2f} ms  statuses {result['statuses']}"
    )


async def drain(
    url: str, env: dict[str, str], limit_seconds: float
) -> tuple[dict[str, int], float]:
    """Run one worker until no API event is left `received`; returns counts and seconds."""
    worker = spawn(
        [sys.executable, "-m", "app.cli", "worker"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL
    )
    started = time.monotonic()
    try:
        while time.monotonic() - started < limit_seconds:
            counts = await count_events(url, "3:")
            if counts.get("received", 0) == 0:
                break
            await asyncio.sleep(0.5)
    finally:
        stop(worker)
    return await count_events(url, "3:"), time.monotonic() - started


async def main(args: argparse.Namespace) -> None:
    url = args.database_url
    await flush_redis(args.redis_url)
    fernet_key = CredentialCipher.generate_key()
    sandbox_port, floor_port, api_port = free_port(), free_port(), free_port()
    sandbox = spawn(
        [sys.executable, __file__, "--serve-sandbox", str(sandbox_port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    processes = [sandbox]
    try:
        assert sandbox.stdout is not None
        credentials = json.loads(sandbox.stdout.readline())
        wait_for_port(sandbox_port)
        order_ids = credentials.pop("orderIds")
        await create_connection(url, fernet_key, credentials)
        print(f"{args.senders} senders, {args.duration:.0f} s per server, one process each")

        floor = spawn(
            [sys.executable, __file__, "--serve-floor", str(floor_port), "--database-url", url]
        )
        processes.append(floor)
        wait_for_port(floor_port)
        floor_result = await load(floor_port, order_ids, args.senders, args.duration)
        stop(floor)
        floor_stored = sum((await count_events(url, "floor:")).values())
        report("floor", floor_result)
        print(f"       stored {floor_stored} of {floor_result['accepted']} accepted")

        env = {
            **os.environ,
            "DATABASE_URL": url,
            "REDIS_URL": args.redis_url,
            "AUTH_JWT_SECRET": JWT_KEY,
            "CREDENTIALS_ENCRYPTION_KEYS": fernet_key,
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{api_port}",
            "SHOPEE_BASE_URL": f"http://127.0.0.1:{sandbox_port}",
            "LOG_LEVEL": "WARNING",
        }
        api = spawn(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                args.api_factory,
                "--host",
                "127.0.0.1",
                "--port",
                str(api_port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env=env,
            cwd=ROOT,
        )
        processes.append(api)
        wait_for_port(api_port)
        api_result = await load(api_port, order_ids, args.senders, args.duration)
        stop(api)
        report("api", api_result)
        print(
            f"       {api_result['rate'] / floor_result['rate']:.0%} of the floor's rate "
            "(goal: at least 50%, p99 under 30 ms)"
        )
        counts, seconds = await drain(url, env, args.drain_timeout)
        stored = sum(counts.values())
        print(
            f"       sent {api_result['sent']}, accepted {api_result['accepted']}, "
            f"stored {stored}, processed {counts.get('processed', 0)}, "
            f"failed {counts.get('failed', 0)}, left {counts.get('received', 0)} "
            f"(worker drained in {seconds:.1f} s, {stored / seconds:.0f} events/s)"
        )
    finally:
        for process in processes:
            if process.poll() is None:
                stop(process)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30, help="seconds per server")
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    parser.add_argument("--drain-timeout", type=float, default=600)
    parser.add_argument(
        "--api-factory",
        default="app.main:app_factory",
        help="uvicorn factory of the API under test (to measure a variant)",
    )
    parser.add_argument("--serve-sandbox", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-floor", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve_sandbox:
        serve_sandbox(arguments.serve_sandbox)
    elif arguments.serve_floor:
        serve_floor(arguments.serve_floor, arguments.database_url)
    else:
        from app.cli import run_migrations

        asyncio.run(prepare_database(arguments.database_url))
        run_migrations(arguments.database_url)
        asyncio.run(main(arguments))
