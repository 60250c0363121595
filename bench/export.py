"""The order export at a million orders: rows per second and the API process's peak memory.

    python -m bench.export [--orders 1000000] [--formats csv xlsx]

Builds (or reuses) `--orders` orders of ONE user over a Shopee, a Lazada and a Facebook
connection in BENCH_DATABASE_URL (default postgresql://root@127.0.0.1:5432/omni_bench_export;
migrations run first), written by one INSERT .. SELECT from generate_series (Thai names, phones,
e-mails, three currencies). Then, per format, starts the real API with uvicorn (one worker),
streams GET /api/marketplace/orders/export to /dev/null with httpx and prints rows/s, bytes and
the server's peak RSS (VmHWM) beside its RSS before the export. Figures are printed, never
asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.auth import issue_token
from app.cli import run_migrations
from app.customers.service import rebuild
from bench.orders_api import JWT_SECRET, asyncpg_dsn, sqlalchemy_url, start_server

USER = "bench-export-user"
PLATFORMS = ("shopee", "lazada", "facebook")

# One statement: the server writes the rows, nothing passes through Python.
_BUILD = """
INSERT INTO marketplace_orders (connection_id, user_id, platform_code, external_order_id,
    status, raw_status, buyer_name, buyer_phone, buyer_email, shipping_address, currency,
    subtotal, shipping_fee, discount, total, payment_method, is_cod, order_created_at,
    order_updated_at, raw, content_hash)
SELECT c.id, $1, c.platform_code, 'EXP-' || n,
    (ARRAY['completed','delivered','shipped','pending','cancelled'])[1 + n % 5], 'RAW',
    (ARRAY['สมชาย','มาลี','อนันต์','Somchai','=cmd|calc'])[1 + n % 5] || ' ' || (n % 9973),
    '+668' || lpad((n % 100000000)::text, 8, '0'),
    'buyer' || (n % 50000) || '@example.com', NULL,
    (ARRAY['THB','THB','VND'])[1 + n % 3],
    (n % 100000) / 100.0, 0, 0, (n % 100000) / 100.0, 'COD', true,
    timestamptz '2025-01-01' + n * interval '30 seconds',
    timestamptz '2025-01-01' + n * interval '30 seconds', '{}'::jsonb, '\\x00'::bytea
FROM generate_series(1, $2) AS n
JOIN LATERAL (SELECT id, platform_code FROM marketplace_connections WHERE user_id = $1
              ORDER BY platform_code OFFSET n % 3 LIMIT 1) AS c ON true
"""


async def build(url: str, orders: int) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        have = await conn.fetchval(
            "SELECT count(*) FROM marketplace_orders WHERE user_id = $1", USER
        )
        if have == orders:
            print(f"reusing {orders:,} orders of {USER}")
            return
        started = time.monotonic()
        await conn.execute("DELETE FROM marketplace_connections WHERE user_id = $1", USER)
        for platform in PLATFORMS:
            await conn.execute(
                "INSERT INTO marketplace_connections (id, user_id, platform_code, shop_id, "
                "shop_name, api_key_encrypted, api_secret_encrypted, access_token_encrypted) "
                "VALUES ($1, $2, $3, $4, $5, 'x', 'x', 'x')",
                uuid.uuid4(),
                USER,
                platform,
                f"export-{platform}",
                f"{platform} shop",
            )
        await conn.execute("SET synchronous_commit = off")
        await conn.execute(_BUILD, USER, orders)
        await conn.execute("ANALYZE marketplace_orders")
        print(f"built {orders:,} orders in {time.monotonic() - started:.0f} s")
    finally:
        await conn.close()


async def rebuild_customers(url: str, orders: int) -> None:
    """The full rebuild (`omni-sales rebuild-customers`): every order linked from scratch
    (skipped when every order is linked already), then VACUUM ANALYZE as autovacuum would."""
    engine = create_async_engine(sqlalchemy_url(url))
    try:
        async with engine.connect() as conn:
            linked_now = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM customer_orders co JOIN customers c "
                        "ON c.id = co.customer_id WHERE c.user_id = :u"
                    ),
                    {"u": USER},
                )
            ).scalar_one()
        if linked_now == orders:
            print(f"reusing the customers of {orders:,} linked orders")
            return
        started = time.monotonic()
        linked = await rebuild(async_sessionmaker(engine), USER)
        seconds = time.monotonic() - started
        async with engine.connect() as conn:
            customers = (
                await conn.execute(
                    text("SELECT count(*) FROM customers WHERE user_id = :u"), {"u": USER}
                )
            ).scalar_one()
        print(
            f"customers: {linked:,} of {orders:,} orders linked into {customers:,} customers "
            f"in {seconds:.1f} s = {linked / seconds:,.0f} orders/s"
        )
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in ("customers", "customer_keys", "customer_orders"):
                await conn.execute(text(f"VACUUM ANALYZE {table}"))
    finally:
        await engine.dispose()


async def customer_reads(base_url: str) -> None:
    """Customer list pages (first, deep by cursor, searched) through the API: median of 20."""
    token = issue_token(USER, secret=JWT_SECRET, ttl=timedelta(hours=1))
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, timeout=60, headers=headers) as client:

        async def median(params: dict[str, str]) -> float:
            times = []
            for _ in range(20):
                started = time.monotonic()
                response = await client.get(
                    "/api/marketplace/customers", params={"userId": USER, **params}
                )
                response.raise_for_status()
                times.append(time.monotonic() - started)
            return sorted(times)[len(times) // 2] * 1000

        cursor = ""
        for _ in range(100):  # 100 pages of 200 deep
            body = (
                await client.get(
                    "/api/marketplace/customers",
                    params={
                        "userId": USER,
                        "limit": "200",
                        **({"cursor": cursor} if cursor else {}),
                    },
                )
            ).json()
            cursor = body["pagination"]["nextCursor"] or ""
        first = await median({"limit": "50"})
        deep = await median({"limit": "50", "cursor": cursor})
        search = await median({"limit": "50", "q": "buyer4242@"})
        phone = await median({"limit": "50", "q": "0800004242"})
        print(
            f"customer list (median ms of 20): first page {first:.1f}, page after 20,000 "
            f"{deep:.1f}, q=e-mail part {search:.1f}, q=phone {phone:.1f}"
        )


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


async def export(base_url: str, fmt: str) -> tuple[int, int, float]:
    """Streams one export; returns (rows, bytes, seconds)."""
    token = issue_token(USER, secret=JWT_SECRET, ttl=timedelta(hours=1))
    rows = size = 0
    started = time.monotonic()
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=600) as client,
        client.stream(
            "GET",
            "/api/marketplace/orders/export",
            params={"userId": USER, "format": fmt, "tz": "Asia/Bangkok"},
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        response.raise_for_status()
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if fmt == "csv":
                rows += chunk.count(b"\n")
    elapsed = time.monotonic() - started
    return (rows - 1 if fmt == "csv" else -1), size, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--formats", nargs="*", default=["csv", "xlsx"], choices=["csv", "xlsx"])
    parser.add_argument(
        "--customers",
        action="store_true",
        help="also link the orders to customers (the full rebuild) and time it",
    )
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL", "postgresql://root@127.0.0.1:5432/omni_bench_export")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    asyncio.run(_ensure_database(url))
    run_migrations(sqlalchemy_url(url))
    asyncio.run(build(url, args.orders))
    if args.customers:
        asyncio.run(rebuild_customers(url, args.orders))
        server = start_server(url, redis_url, 1)
        try:
            asyncio.run(customer_reads(server.base_url))
        finally:
            server.stop()
    for fmt in args.formats:
        server = start_server(url, redis_url, 1)
        try:
            pid = server.process.pid
            before = _kib(pid, "VmRSS")
            rows, size, seconds = asyncio.run(export(server.base_url, fmt))
            peak = _kib(pid, "VmHWM")
        finally:
            server.stop()
        shown = args.orders if rows < 0 else rows
        print(
            f"{fmt}: {shown:,} rows, {size / 2**20:.1f} MiB in {seconds:.1f} s = "
            f"{shown / seconds:,.0f} rows/s; server RSS {before / 1024:.0f} MiB before, "
            f"peak {peak / 1024:.0f} MiB"
        )


async def _ensure_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(asyncpg_dsn(url.rsplit("/", 1)[0] + "/postgres"))
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


if __name__ == "__main__":
    main()
