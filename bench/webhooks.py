"""Webhooks at a campaign peak: the ingest answer time, and per platform how fast a backlog of
pushes drains compared with a full sync of the same shop, under the default per-shop limit of
10 calls/s. Figures are printed, none asserted.

    python bench/webhooks.py                    # quick: 1,000 orders a shop, 500 pushed, 3 s load
    python bench/webhooks.py --orders 4000 --pushed 2000 --duration 10

One sandbox process (the three marketplaces) and one API process (uvicorn) on loopback ports.
Ingest: 16 raw keep-alive HTTP/1.1 senders post signed Shopee pushes (p50/p99 answer). Then per
platform: a full sync of a seeded shop (the sync engine, in this process) gives the rate at
which a sync stores orders; a share of the shop's orders changes and the sandbox pushes them to
the API while no worker runs (Lazada one push per order line, Meta one delivery holding every
change); then a worker starts and the time until every event is processed gives the drain rate
(pushed orders stored per second). `--latency 0.1` makes the sandbox answer each call after
0.1 s, as a marketplace would. PostgreSQL: BENCH_DATABASE_URL (default
`omni_bench_webhooks` on the local server, rebuilt by the migrations); Redis: BENCH_REDIS_URL
(default db 15 on the local server, flushed).
"""

from __future__ import annotations

import argparse
import asyncio
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
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from app.config import Settings  # noqa: E402
from app.crypto import CredentialCipher  # noqa: E402
from app.sandbox.app import base_urls  # noqa: E402

DEFAULT_DB = "postgresql+asyncpg://root@127.0.0.1:5432/omni_bench_webhooks"
DEFAULT_REDIS = "redis://127.0.0.1:6379/15"
JWT_KEY = "bench-key-" + "x" * 33
PUSH_PATH = "/api/webhooks/marketplace"
PLATFORMS = ("shopee", "lazada", "facebook", "tiktok")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 30) -> None:
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


async def flush_redis(url: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    await client.flushdb()
    await client.aclose()


def settings_for(args: argparse.Namespace, fernet_key: str, sandbox_root: str) -> Settings:
    # The default client tuning: 10 calls/s per shop, 4 concurrent detail batches.
    return Settings(
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        AUTH_JWT_SECRET=SecretStr(JWT_KEY),
        CREDENTIALS_ENCRYPTION_KEYS=[SecretStr(fernet_key)],
        SYNC_BACKFILL_DAYS=400,
        **base_urls(sandbox_root),
    )


async def sandbox_call(root: str, platform: str, path: str, body: dict[str, Any]) -> Any:
    async with httpx.AsyncClient(base_url=root, timeout=120) as client:
        response = await client.post(f"/{platform}/_sandbox/{path}", json=body)
        response.raise_for_status()
        return response.json() if response.content else None


async def create_shop(root: str, platform: str, shop_id: int, orders: int) -> dict[str, Any]:
    body = {"shopId": str(shop_id), "seed": f"bench-{platform}", "orderCount": orders, "days": 30}
    credentials: dict[str, Any] = await sandbox_call(root, platform, "shops", body)
    return credentials


async def create_connection(
    settings: Settings, platform: str, credentials: dict[str, Any]
) -> uuid.UUID:
    from app.models import MarketplaceConnection

    cipher = CredentialCipher([k.get_secret_value() for k in settings.credentials_encryption_keys])
    engine = create_async_engine(str(settings.database_url))
    connection_id = uuid.uuid4()
    refresh = credentials.get("refreshToken")
    async with engine.begin() as conn:
        await conn.execute(
            MarketplaceConnection.__table__.insert().values(
                id=connection_id,
                user_id="bench",
                platform_code=platform,
                shop_id=str(credentials["shopId"]),
                shop_name="bench",
                api_key_encrypted=cipher.encrypt(credentials["apiKey"]),
                api_secret_encrypted=cipher.encrypt(credentials["apiSecret"]),
                access_token_encrypted=cipher.encrypt(credentials["accessToken"]),
                refresh_token_encrypted=cipher.encrypt(refresh) if refresh else None,
            )
        )
    await engine.dispose()
    return connection_id


async def event_counts(settings: Settings, connection_id: uuid.UUID) -> dict[str, int]:
    engine = create_async_engine(str(settings.database_url))
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT status, count(*) FROM marketplace_webhooks "
                "WHERE connection_id = :c GROUP BY status"
            ),
            {"c": connection_id},
        )
        counts = {str(status): int(n) for status, n in rows}
    await engine.dispose()
    return counts


# --- ingest ---------------------------------------------------------------------------------


class Sequence:
    def __init__(self, shop_id: int, order_ids: list[str]) -> None:
        self.shop_id = shop_id
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
            "shop_id": self.shop_id,
            "code": 3,
            "timestamp": int(time.time()),
        }
        return json.dumps(payload, separators=(",", ":")).encode()


async def sender(
    port: int,
    partner_key: str,
    sequence: Sequence,
    until: float,
    latencies: list[float],
    statuses: dict[int, int],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    host = f"127.0.0.1:{port}"
    url = f"http://{host}{PUSH_PATH}".encode()
    try:
        while time.monotonic() < until:
            body = sequence.body()
            signature = hmac.new(partner_key.encode(), url + b"|" + body, hashlib.sha256)
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


async def load(
    port: int, credentials: dict[str, Any], senders: int, duration: float
) -> dict[str, Any]:
    sequence = Sequence(int(credentials["shopId"]), [f"2501{n:06d}X" for n in range(5000)])
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    started = time.monotonic()
    until = started + duration
    await asyncio.gather(
        *(
            sender(port, credentials["apiSecret"], sequence, until, latencies, statuses)
            for _ in range(senders)
        )
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


def report_ingest(result: dict[str, Any]) -> None:
    print(
        f"ingest   {result['sent']:>6} pushes from 16 senders  accepted/s {result['rate']:>6.0f}  "
        f"p50 {result['p50']:6.2f} ms  p99 {result['p99']:6.2f} ms  statuses {result['statuses']}"
    )


# --- sync and drain -------------------------------------------------------------------------


async def full_sync(settings: Settings, connection_id: uuid.UUID) -> tuple[int, float, int]:
    """A full sync of the connection in this process: (orders stored, seconds, calls)."""
    from app.models import MarketplaceSyncLog
    from app.sync.engine import run_sync
    from app.worker_context import WorkerContext

    wc = WorkerContext.create(settings)
    calls = 0

    async def count(request: httpx.Request) -> None:
        nonlocal calls
        calls += 1

    wc.http.event_hooks["request"].append(count)
    log_id = uuid.uuid4()
    async with wc.sessionmaker() as session:
        session.add(
            MarketplaceSyncLog(
                id=log_id,
                connection_id=connection_id,
                user_id="bench",
                status="running",
                details={},
                checkpoint={},
            )
        )
        await session.commit()
    started = time.perf_counter()
    status = await run_sync(wc, log_id)
    seconds = time.perf_counter() - started
    async with wc.sessionmaker() as session:
        log = await session.get(MarketplaceSyncLog, log_id)
        assert log is not None
        stored = log.orders_created + log.orders_updated
    await wc.close()
    if status != "success":
        print(f"         (sync ended {status})")
    return stored, seconds, calls


async def run_drain_worker(settings: Settings) -> tuple[float, Counter[str]]:
    """A worker that starts now, runs the queued drain jobs and stops once the queue is
    empty (arq burst mode); (seconds from its start-up to its end, calls by path)."""
    from app.webhooks import tasks
    from app.worker import create_worker

    calls: Counter[str] = Counter()

    async def count(request: httpx.Request) -> None:
        parts = request.url.path.strip("/").split("/")[-3:]
        calls["/".join("{id}" if p.isdigit() else p for p in parts)] += 1

    worker = create_worker(
        settings, functions=tasks.FUNCTIONS, cron_jobs=[], burst=True, poll_delay=0.05
    )
    original = worker.on_startup

    started = 0.0

    async def startup(ctx: dict[str, Any]) -> None:
        nonlocal started
        assert original is not None
        await original(ctx)
        ctx["app"].http.event_hooks["request"].append(count)
        # From a started worker on, as the sync's figure leaves out its own start-up.
        started = time.perf_counter()

    worker.on_startup = startup
    await worker.async_run()
    seconds = time.perf_counter() - started
    await worker.close()
    return seconds, calls


async def push_backlog(
    root: str, platform: str, credentials: dict[str, Any], api_url: str, share: float
) -> list[str]:
    """Change `share` of the shop's orders and have the sandbox push them (no worker runs)."""
    changed = await sandbox_call(
        root, platform, "orders/change", {"shopId": str(credentials["shopId"]), "fraction": share}
    )
    order_ids = [str(c["orderId"]) for c in changed["changed"]]
    body = {"shopId": str(credentials["shopId"]), "url": api_url, "orderIds": order_ids}
    await sandbox_call(root, platform, "webhooks/send", body)
    return order_ids


async def platform_run(
    args: argparse.Namespace,
    settings: Settings,
    root: str,
    api_url: str,
    platform: str,
    shop_id: int,
) -> float:
    credentials = await create_shop(root, platform, shop_id, args.orders)
    if args.latency:
        await sandbox_call(root, platform, "faults", {"latency_seconds": args.latency})
    connection_id = await create_connection(settings, platform, credentials)
    stored, sync_seconds, sync_calls = await full_sync(settings, connection_id)
    sync_rate = stored / sync_seconds
    order_ids = await push_backlog(
        root, platform, credentials, api_url, min(1.0, args.pushed / args.orders)
    )
    waiting = (await event_counts(settings, connection_id)).get("received", 0)
    seconds, by_path = await run_drain_worker(settings)
    calls = sum(by_path.values())
    counts = await event_counts(settings, connection_id)
    drain_rate = len(order_ids) / seconds
    print(
        f"{platform:<8} full sync {stored:>5} orders in {sync_seconds:5.1f} s "
        f"({sync_calls:>3} calls) = {sync_rate:6.1f} orders/s | "
        f"drain {len(order_ids):>5} orders ({waiting} events) in "
        f"{seconds:5.1f} s ({calls:>3} calls) = {drain_rate:6.1f} orders/s | "
        f"ratio {drain_rate / sync_rate:4.2f} (target >= 0.8)"
    )
    print(f"         events {counts}; drain calls {dict(by_path)}")
    return drain_rate / sync_rate


async def main(args: argparse.Namespace) -> None:
    await flush_redis(args.redis_url)
    fernet_key = CredentialCipher.generate_key()
    sandbox_port, api_port = free_port(), free_port()
    root = f"http://127.0.0.1:{sandbox_port}"
    settings = settings_for(args, fernet_key, root)
    sandbox = spawn(
        [
            sys.executable,
            "-c",
            "import uvicorn; from app.sandbox.app import SandboxSet, build_app; "
            f"uvicorn.run(build_app(SandboxSet()), host='127.0.0.1', port={sandbox_port}, "
            "log_level='warning', access_log=False)",
        ],
        cwd=ROOT,
    )
    processes = [sandbox]
    try:
        wait_for_port(sandbox_port)
        env = {
            **os.environ,
            "DATABASE_URL": args.database_url,
            "REDIS_URL": args.redis_url,
            "AUTH_JWT_SECRET": JWT_KEY,
            "CREDENTIALS_ENCRYPTION_KEYS": fernet_key,
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{api_port}",
            "LOG_LEVEL": "WARNING",
            **base_urls(root),
        }
        api = spawn(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "app.main:app_factory",
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
        api_url = f"http://127.0.0.1:{api_port}{PUSH_PATH}"

        ingest_shop = await create_shop(root, "shopee", 771_000_001, 0)
        ingest_connection = await create_connection(settings, "shopee", ingest_shop)
        report_ingest(await load(api_port, ingest_shop, args.senders, args.duration))
        # The ingest pushes name orders the shop does not have: keep them out of the drains.
        engine = create_async_engine(args.database_url)
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE marketplace_webhooks SET status = 'ignored' WHERE connection_id = :c"),
                {"c": ingest_connection},
            )
        await engine.dispose()
        await flush_redis(args.redis_url)

        print(
            f"{args.orders} orders a shop, {args.pushed} of them pushed; "
            f"{settings.clients.calls_per_second:g} calls/s per shop"
        )
        ratios = []
        for n, platform in enumerate(args.platforms):
            ratios.append(
                await platform_run(args, settings, root, api_url, platform, 772_000_001 + n)
            )
        print(f"lowest ratio {min(ratios):.2f} (target >= 0.8 on every platform)")
    finally:
        for process in processes:
            if process.poll() is None:
                stop(process)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--orders",
        type=int,
        default=5000,
        help="orders seeded per shop (enough that the call limit binds)",
    )
    parser.add_argument("--pushed", type=int, default=2500, help="orders changed and pushed")
    parser.add_argument("--duration", type=float, default=3, help="seconds of ingest load")
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds the sandbox takes to answer a call"
    )
    parser.add_argument("--platforms", nargs="+", default=list(PLATFORMS), choices=PLATFORMS)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    arguments = parser.parse_args()
    from app.cli import run_migrations

    asyncio.run(prepare_database(arguments.database_url))
    run_migrations(arguments.database_url)
    asyncio.run(main(arguments))
