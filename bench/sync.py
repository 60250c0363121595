"""Sync throughput and memory against a sandbox marketplace (figures printed, none asserted).

    python bench/sync.py                      # 50,000 orders, full then 1% incremental
    python bench/sync.py --orders 200000      # memory at 200,000 orders
    python bench/sync.py --throttled          # 150 ms per call, 10 calls/s: time vs. the floor

The sandbox runs in its own process (uvicorn on a loopback port); each sync runs in a fresh
worker process whose peak memory (max RSS) is reported. PostgreSQL comes from
BENCH_DATABASE_URL (default: the local server's `omni_bench_sync` database, created if absent).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pydantic import SecretStr  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from app.cli import run_migrations  # noqa: E402
from app.config import ClientTuning, Settings  # noqa: E402
from app.crypto import CredentialCipher  # noqa: E402
from app.models import MarketplaceConnection, MarketplaceSyncLog  # noqa: E402
from app.sandbox.app import base_urls  # noqa: E402

DEFAULT_DB = "postgresql+asyncpg://root@127.0.0.1:5432/omni_bench_sync"
KEY = "bench-key-" + "x" * 33
FERNET_KEY = CredentialCipher.generate_key()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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


def settings_for(url: str, sandbox_root: str, calls_per_second: float) -> Settings:
    return Settings(
        DATABASE_URL=url,
        REDIS_URL="redis://127.0.0.1:6379/15",
        AUTH_JWT_SECRET=SecretStr(KEY),
        CREDENTIALS_ENCRYPTION_KEYS=[SecretStr(os.environ["BENCH_FERNET_KEY"])],
        SYNC_BACKFILL_DAYS=400,
        clients=ClientTuning(calls_per_second=calls_per_second),
        **base_urls(sandbox_root),
    )


async def create_connection(url: str, platform: str, credentials: dict[str, str]) -> uuid.UUID:
    cipher = CredentialCipher([os.environ["BENCH_FERNET_KEY"]])
    engine = create_async_engine(url)
    connection_id = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            MarketplaceConnection.__table__.insert().values(
                id=connection_id,
                user_id="bench",
                platform_code=platform,
                shop_id=credentials["shopId"],
                shop_name="bench",
                api_key_encrypted=cipher.encrypt(credentials["apiKey"]),
                api_secret_encrypted=cipher.encrypt(credentials["apiSecret"]),
                access_token_encrypted=cipher.encrypt(credentials["accessToken"]),
                refresh_token_encrypted=(
                    cipher.encrypt(credentials["refreshToken"])
                    if credentials.get("refreshToken")
                    else None
                ),
            )
        )
    await engine.dispose()
    return connection_id


async def new_log(url: str, connection_id: uuid.UUID) -> uuid.UUID:
    engine = create_async_engine(url)
    log_id = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            MarketplaceSyncLog.__table__.insert().values(
                id=log_id,
                connection_id=connection_id,
                user_id="bench",
                status="running",
                details={},
                checkpoint={},
            )
        )
    await engine.dispose()
    return log_id


def run_worker_process(args: list[str]) -> tuple[dict[str, object], float]:
    """Run one sync in a child process; returns its report and its peak RSS in MB."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--worker", *args],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    _, status, usage = os.wait4(process.pid, 0)
    output = process.stdout.read() if process.stdout else ""
    if status != 0:
        raise RuntimeError(f"worker failed: {output}")
    return json.loads(output.strip().splitlines()[-1]), usage.ru_maxrss / 1024


async def worker_main(url: str, root: str, log_id: str, calls_per_second: float) -> None:
    from app.sync.engine import run_sync
    from app.worker_context import WorkerContext

    wc = WorkerContext.create(settings_for(url, root, calls_per_second))
    calls = 0

    async def count(request: httpx.Request) -> None:
        nonlocal calls
        calls += 1

    wc.http.event_hooks["request"].append(count)
    started = time.perf_counter()
    status = await run_sync(wc, uuid.UUID(log_id))
    elapsed = time.perf_counter() - started
    async with wc.sessionmaker() as session:
        log = await session.get(MarketplaceSyncLog, uuid.UUID(log_id))
        assert log is not None
        report = {
            "status": status,
            "seconds": elapsed,
            "calls": calls,
            "fetched": log.orders_fetched,
            "created": log.orders_created,
            "updated": log.orders_updated,
            "unchanged": log.orders_unchanged,
            "failed": log.orders_failed,
            "error": log.error_message,
        }
    await wc.close()
    print(json.dumps(report))


def start_sandbox(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import uvicorn; from app.sandbox.app import SandboxSet, build_app; "
            f"uvicorn.run(build_app(SandboxSet()), host='127.0.0.1', port={port}, "
            "log_level='warning', access_log=False)",
        ],
        cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("sandbox did not start")


def line(label: str, report: dict[str, object], rss: float) -> str:
    seconds = float(report["seconds"])  # type: ignore[arg-type]
    fetched = int(report["fetched"])  # type: ignore[call-overload]
    rate = fetched / seconds if seconds else 0.0
    return (
        f"{label:<28} {fetched:>8} orders {seconds:>8.1f} s {rate:>9.0f} orders/s "
        f"{int(report['calls']):>6} calls  peak RSS {rss:>6.0f} MB  "  # type: ignore[call-overload]
        f"created {report['created']} updated {report['updated']} "
        f"unchanged {report['unchanged']} failed {report['failed']} [{report['status']}]"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=None)
    parser.add_argument(
        "--platform", default="shopee", choices=["shopee", "lazada", "facebook", "tiktok"]
    )
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--throttled", action="store_true")
    parser.add_argument("--worker", nargs=4, metavar=("URL", "ROOT", "LOG", "RATE"))
    args = parser.parse_args()
    if args.worker:
        url, root, log_id, rate = args.worker
        asyncio.run(worker_main(url, root, log_id, float(rate)))
        return

    os.environ.setdefault("BENCH_FERNET_KEY", FERNET_KEY)
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    if "+asyncpg" not in url:
        url = "postgresql+asyncpg://" + url.split("://", 1)[1]
    orders = args.orders or (10_000 if args.throttled else 50_000)
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    sandbox = start_sandbox(port)
    try:
        asyncio.run(prepare_database(url))
        run_migrations(url)
        shop = httpx.post(
            f"{root}/{args.platform}/_sandbox/shops",
            json={"shopId": "777000111", "seed": "bench", "orderCount": orders, "days": args.days},
            timeout=600,
        ).json()
        connection_id = asyncio.run(create_connection(url, args.platform, shop))
        print(f"platform={args.platform} orders={orders} days={args.days} cpus={os.cpu_count()}")
        if args.throttled:
            httpx.post(
                f"{root}/{args.platform}/_sandbox/faults",
                json={"latency_seconds": 0.15},
                timeout=10,
            )
            log_id = asyncio.run(new_log(url, connection_id))
            report, rss = run_worker_process([url, root, str(log_id), "10"])
            floor = int(report["calls"]) / 10  # type: ignore[call-overload]
            print(line("throttled full sync", report, rss))
            print(
                f"least time the 10 calls/s limit allows for {report['calls']} calls: "
                f"{floor:.1f} s; measured {float(report['seconds']):.1f} s "  # type: ignore[arg-type]
                f"= {float(report['seconds']) / floor:.2f}x the floor"
            )  # type: ignore[arg-type]
            return
        log_id = asyncio.run(new_log(url, connection_id))
        report, rss = run_worker_process([url, root, str(log_id), "100000"])
        print(line("full sync", report, rss))
        changed = httpx.post(
            f"{root}/{args.platform}/_sandbox/orders/change",
            json={"shopId": shop["shopId"], "fraction": 0.01},
            timeout=600,
        )
        changed.raise_for_status()
        time.sleep(1.1)  # a sync reads updates before its start second
        log_id = asyncio.run(new_log(url, connection_id))
        report, rss = run_worker_process([url, root, str(log_id), "100000"])
        print(line("incremental (1% changed)", report, rss))
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"(bench driver peak RSS {own:.0f} MB; sandbox runs in its own process)")
        print(f"finished {datetime.now(UTC).isoformat(timespec='seconds')}")
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)


if __name__ == "__main__":
    main()
