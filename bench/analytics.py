"""The analytics endpoints at a million orders: p50/p99 latency and the query plans.

    python -m bench.analytics [--orders 1000000] [--requests 200] [--concurrency 1]

Reuses the orders bench's data set (bench/orders_api.py: 1,000 users, 3 connections each,
orders spread over the last year) in BENCH_DATABASE_URL (default
postgresql://root@127.0.0.1:5432/omni_bench; with --orders other than 1,000,000 the database
name gets a suffix, e.g. omni_bench_100000, so the shared data set is left alone). Starts the
real API on a loopback port and asks each analytics endpoint for random users over the last
90 days and the last year, then prints EXPLAIN (ANALYZE, BUFFERS) of every query for one user.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import uvloop
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.analytics import repository
from app.analytics.schemas import Interval
from app.auth import issue_token
from app.crypto import CredentialCipher
from bench import orders_api
from bench.orders_api import HEADER, CpuProbe, Request, Server, drive

TZ = "Asia/Bangkok"
RANGES = {"90 days": 90, "1 year": 365}
DEFAULT_ORDERS = orders_api.ORDERS
BASE = "/api/marketplace/analytics"
SECRET = orders_api.JWT_SECRET


def app_factory() -> FastAPI:
    """The real app, with the analytics routes added should app.main not include them yet."""
    from app.analytics.router import router
    from app.main import app_factory as real_factory

    app = real_factory()
    if f"{BASE}/summary" not in {getattr(route, "path", None) for route in app.routes}:
        app.include_router(router)
    return app


def start_server(database_url: str, redis_url: str) -> Server:
    """One uvicorn worker (uvloop, httptools, no access log) on a free loopback port."""
    port = orders_api._free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "AUTH_JWT_SECRET": orders_api.JWT_SECRET,
        "CREDENTIALS_ENCRYPTION_KEYS": CredentialCipher.generate_key(),
        "LOG_LEVEL": "WARNING",
    }
    command = [
        *(sys.executable, "-m", "uvicorn", "--factory", "bench.analytics:app_factory"),
        *("--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools"),
        *("--no-access-log", "--log-level", "warning"),
    ]
    process = subprocess.Popen(command, env=env, cwd=orders_api.ROOT)
    server = Server(process, f"http://127.0.0.1:{port}", database_url)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited with code {process.returncode}")
        try:
            if httpx.get(server.base_url + "/ready", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError("the API did not become ready in 60 s")


def database_for(orders: int) -> str:
    url = os.environ.get("BENCH_DATABASE_URL", "postgresql://root@127.0.0.1:5432/omni_bench")
    return url if orders == DEFAULT_ORDERS else f"{url}_{orders}"


async def ensure_database(url: str) -> None:
    base, _, name = orders_api.asyncpg_dsn(url).rpartition("/")
    conn = await asyncpg.connect(f"{base}/postgres")
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def window(days: int) -> tuple[date, date]:
    today = datetime.now(ZoneInfo(TZ)).date()
    return today - timedelta(days=days - 1), today


def scenarios(users: list[str], requests: int) -> list[tuple[str, Any]]:
    rng = random.Random(11)
    picks = [rng.choice(users) for _ in range(requests)]
    tokens = {
        u: {"Authorization": "Bearer " + issue_token(u, ttl=timedelta(hours=2), secret=SECRET)}
        for u in set(picks)
    }
    endpoints: list[tuple[str, str, dict[str, str | int]]] = [
        ("summary", "summary", {}),
        ("timeseries day/orders", "timeseries", {"interval": "day", "metric": "orders"}),
        ("timeseries week/revenue", "timeseries", {"interval": "week", "metric": "revenue"}),
        ("top-products 10", "top-products", {"limit": 10}),
    ]
    found = []
    for range_name, days in RANGES.items():
        start, end = window(days)
        span = {"from": start.isoformat(), "to": end.isoformat(), "tz": TZ}
        for name, path, extra in endpoints:
            # Default arguments bind this scenario's values (closures would see the last).
            def make(
                n: int,
                path: str = path,
                query: dict[str, str | int] = {**span, **extra},  # noqa: B006
            ) -> Request:
                return f"{BASE}/{path}", {"userId": picks[n], **query}, tokens[picks[n]]

            found.append((f"{name}, {range_name}", make))
    return found


async def run(base_url: str, pid: int, database_url: str, args: argparse.Namespace) -> None:
    users = [orders_api.user_id(n) for n in range(orders_api.USERS)]
    probe = CpuProbe(pid, database_url)
    tests = scenarios(users, args.requests)
    await drive(base_url, "warm-up", tests[0][1], min(args.requests, 100), 4, probe)
    results = [
        await drive(base_url, name, make, args.requests, args.concurrency, probe)
        for name, make in tests
    ]
    print(
        f"\nAnalytics at {args.orders:,} orders ({orders_api.USERS:,} users), one user per "
        f"request, {args.concurrency} client(s), {os.cpu_count()} CPUs. CPU columns: "
        "milliseconds per request."
    )
    print(HEADER)
    for result in results:
        print(result.row())


async def explain(database_url: str) -> None:
    """EXPLAIN ANALYZE of each analytics statement for one user, 90 days and a year."""
    engine = create_async_engine(orders_api.sqlalchemy_url(database_url))
    statements: list[tuple[str, Any, dict[str, Any]]] = [
        ("summary", repository._SUMMARY, {}),
        ("freshness (dataAsOf)", repository._FRESHNESS, {}),
        ("timeseries day", repository.timeseries_statement(Interval.DAY), {}),
        ("timeseries week", repository.timeseries_statement(Interval.WEEK), {}),
        ("top products", repository._TOP_PRODUCTS, {"limit": 10}),
    ]
    try:
        async with engine.connect() as conn:
            for range_name, days in RANGES.items():
                start, end = window(days)
                user = orders_api.user_id(123)
                params = {"user_id": user, "start": start, "end": end, "tz": TZ}
                for name, statement, extra in statements:
                    plan = await conn.execute(
                        text("EXPLAIN (ANALYZE, BUFFERS) " + statement.text),
                        {**params, **extra},
                    )
                    print(f"\n--- {name}, {range_name} ({user}) ---")
                    print("\n".join(row[0] for row in plan))
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--orders", type=int, default=DEFAULT_ORDERS, help="data set size")
    parser.add_argument("--requests", type=int, default=200, help="per scenario")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--no-plans", action="store_true", help="skip EXPLAIN ANALYZE")
    args = parser.parse_args()
    database_url = database_for(args.orders)
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    # The orders bench's builder reads its ORDERS constant when it runs.
    orders_api.ORDERS = args.orders
    asyncio.run(ensure_database(database_url))
    orders_api.run_migrations(orders_api.sqlalchemy_url(database_url))
    asyncio.run(orders_api.build_dataset(database_url))
    server = start_server(database_url, redis_url)
    try:
        uvloop.run(run(server.base_url, server.process.pid, database_url, args))
    finally:
        server.stop()
    if not args.no_plans:
        asyncio.run(explain(database_url))


if __name__ == "__main__":
    main()
