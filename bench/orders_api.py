"""The orders list endpoint at a million orders: requests per second and p50/p99 latency.

    python -m bench.orders_api [--workers 1 2] [--requests 5000] [--concurrency 16]

Builds (or reuses) 1,000,000 orders of 1,000 users and 3,000 connections in BENCH_DATABASE_URL
(default postgresql://root@127.0.0.1:5432/omni_bench), starts the real API with uvicorn on a
loopback port and drives it with concurrent httpx clients. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import asyncpg
import httpx
import uvloop

from app.auth import issue_token
from app.cli import run_migrations
from app.crypto import CredentialCipher

ROOT = Path(__file__).resolve().parent.parent
USERS = 1_000
CONNECTIONS_PER_USER = 3
ORDERS = 1_000_000
PLATFORMS = ("shopee", "lazada", "facebook")
USER_PREFIX = "bench-user-"
JWT_SECRET = "bench-jwt-secret-that-is-long-enough-for-hs256"
STATUSES = (
    ("completed", 45),
    ("delivered", 10),
    ("shipped", 12),
    ("ready_to_ship", 8),
    ("pending", 8),
    ("unpaid", 5),
    ("cancelled", 9),
    ("returned", 2),
    ("failed", 1),
)
FIRST_NAMES = ("Somchai", "Malee", "Anan", "Suda", "Niran", "Pim", "Kittisak", "Ploy", "Arthit")
LAST_NAMES = ("Srisuk", "Wongsa", "Chaiyaporn", "Boonmee", "Rattana", "Thongdee", "Saetang")
PRODUCTS = ("T-shirt", "Phone case", "Rice cooker", "Face cream", "Sneakers", "Backpack", "Mug")
ORDER_COLUMNS = (
    "id",
    "connection_id",
    "user_id",
    "platform_code",
    "external_order_id",
    "status",
    "raw_status",
    "buyer_name",
    "buyer_phone",
    "buyer_email",
    "shipping_address",
    "currency",
    "subtotal",
    "shipping_fee",
    "discount",
    "total",
    "payment_method",
    "is_cod",
    "order_created_at",
    "order_updated_at",
    "paid_at",
    "raw",
    "content_hash",
    "created_at",
    "updated_at",
)
ITEM_COLUMNS = (
    "order_id",
    "line_no",
    "sku",
    "name",
    "variation",
    "quantity",
    "unit_price",
    "discount",
    "external_item_id",
    "external_product_id",
)
CHUNK = 50_000


def asyncpg_dsn(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1]


def sqlalchemy_url(url: str) -> str:
    return "postgresql+asyncpg://" + url.split("://", 1)[1]


def user_id(n: int) -> str:
    return f"{USER_PREFIX}{n:04d}"


# ---------------------------------------------------------------------------- the data set


async def dataset_ready(conn: asyncpg.Connection) -> bool:
    connections = await conn.fetchval(
        "SELECT count(*) FROM marketplace_connections WHERE user_id LIKE $1", USER_PREFIX + "%"
    )
    if connections != USERS * CONNECTIONS_PER_USER:
        return False
    orders = await conn.fetchval(
        "SELECT count(*) FROM marketplace_orders WHERE user_id LIKE $1", USER_PREFIX + "%"
    )
    return bool(orders == ORDERS)


def _money(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def _order_rows(
    rng: random.Random,
    connections: list[tuple[uuid.UUID, str, str]],
    now: datetime,
    first_id: int,
) -> Iterator[tuple[tuple[object, ...], list[tuple[object, ...]]]]:
    """Orders in creation order across every shop, as syncs would store them over a year, so
    one user's orders are spread over the whole table (no flattering physical clustering)."""
    statuses = [s for s, _ in STATUSES]
    weights = [w for _, w in STATUSES]
    # (fraction of the year, connection index), oldest first.
    times = sorted((rng.random(), i % len(connections)) for i in range(ORDERS))
    year = timedelta(days=365).total_seconds()
    start = now - timedelta(days=365)
    for order_id, (fraction, conn_index) in enumerate(times, start=first_id + 1):
        connection_id, owner, platform = connections[conn_index]
        created = start + timedelta(seconds=fraction * year)
        updated = created + timedelta(minutes=rng.randint(1, 20_000))
        status = rng.choices(statuses, weights)[0]
        is_cod = rng.random() < 0.3
        items = []
        subtotal = 0
        for line_no in range(1, rng.choice((1, 2, 2, 3)) + 1):
            quantity = rng.randint(1, 3)
            price = rng.randint(49, 4_999) * 100 + rng.choice((0, 50, 99))
            subtotal += price * quantity
            product = rng.choice(PRODUCTS)
            items.append(
                (
                    order_id,
                    line_no,
                    f"SKU-{rng.randint(1, 5_000):05d}",
                    product,
                    rng.choice((None, "Red", "Blue, L", "M")),
                    quantity,
                    _money(price),
                    Decimal("0"),
                    str(rng.randint(10**9, 10**10)),
                    str(rng.randint(10**6, 10**7)),
                )
            )
        shipping = rng.choice((0, 3_000, 4_500))
        discount = rng.choice((0, 0, 0, 1_000, 2_550))
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        phone = f"+668{rng.randint(10_000_000, 99_999_999)}"
        external_id = f"{platform[:2].upper()}{order_id:09d}"
        address = {
            "name": name,
            "phone": phone,
            "line1": f"{rng.randint(1, 999)} Sukhumvit Rd",
            "district": "Khlong Toei",
            "city": "Bangkok",
            "postal_code": "10110",
            "country": "TH",
        }
        raw = {"order_sn": external_id, "order_status": status.upper(), "buyer": name}
        row = (
            order_id,
            connection_id,
            owner,
            platform,
            external_id,
            status,
            status.upper(),
            name,
            phone,
            None,
            json.dumps(address),
            "THB",
            _money(subtotal),
            _money(shipping),
            _money(discount),
            _money(subtotal + shipping - discount),
            "COD" if is_cod else "card",
            is_cod,
            created,
            updated,
            None if is_cod else created + timedelta(minutes=5),
            json.dumps(raw),
            order_id.to_bytes(16, "big"),
            updated,
            updated,
        )
        yield row, items


async def build_dataset(url: str) -> None:
    dsn = asyncpg_dsn(url)
    conn = await asyncpg.connect(dsn)
    try:
        if await dataset_ready(conn):
            print("data set: reusing 1,000,000 orders already in the database")
            return
        print("data set: building 1,000,000 orders (a few minutes, once)")
        started = time.perf_counter()
        # Cascades to the bench users' orders and items; other users' rows are left alone.
        await conn.execute(
            "DELETE FROM marketplace_connections WHERE user_id LIKE $1", USER_PREFIX + "%"
        )
        cipher = CredentialCipher([CredentialCipher.generate_key()])
        placeholder = cipher.encrypt("bench-placeholder")
        now = datetime.now(UTC)
        connections = [
            (uuid.uuid4(), user_id(u), platform) for u in range(USERS) for platform in PLATFORMS
        ]
        await conn.copy_records_to_table(
            "marketplace_connections",
            records=[
                (
                    cid,
                    owner,
                    platform,
                    str(cid.int % 10**9),
                    f"Shop {owner} {platform}",
                    *(placeholder, placeholder, placeholder, now, now),
                )
                for cid, owner, platform in connections
            ],
            columns=(
                "id",
                "user_id",
                "platform_code",
                "shop_id",
                "shop_name",
                "api_key_encrypted",
                "api_secret_encrypted",
                "access_token_encrypted",
                "created_at",
                "updated_at",
            ),
        )
        first_id = await conn.fetchval("SELECT coalesce(max(id), 0) FROM marketplace_orders")
        rng = random.Random(20_240_101)
        orders: list[tuple[object, ...]] = []
        items: list[tuple[object, ...]] = []
        done = 0
        for row, row_items in _order_rows(rng, connections, now, first_id):
            orders.append(row)
            items.extend(row_items)
            if len(orders) == CHUNK:
                await _copy(conn, orders, items)
                done += len(orders)
                orders, items = [], []
                print(f"  {done:>9,} orders  {time.perf_counter() - started:6.1f} s", flush=True)
        if orders:
            await _copy(conn, orders, items)
        await conn.execute(
            "SELECT setval(pg_get_serial_sequence('marketplace_orders', 'id'), "
            "(SELECT max(id) FROM marketplace_orders))"
        )
        await conn.execute(
            "SELECT setval(pg_get_serial_sequence('marketplace_order_items', 'id'), "
            "(SELECT max(id) FROM marketplace_order_items))"
        )
        # The visibility map lets count(*) use index-only scans; fresh statistics pick plans.
        await conn.execute("VACUUM (ANALYZE) marketplace_orders")
        await conn.execute("VACUUM (ANALYZE) marketplace_order_items")
        await conn.execute("VACUUM (ANALYZE) marketplace_connections")
        print(f"data set: built in {time.perf_counter() - started:.0f} s")
    finally:
        await conn.close()


async def _copy(
    conn: asyncpg.Connection, orders: list[tuple[object, ...]], items: list[tuple[object, ...]]
) -> None:
    await conn.copy_records_to_table("marketplace_orders", records=orders, columns=ORDER_COLUMNS)
    await conn.copy_records_to_table("marketplace_order_items", records=items, columns=ITEM_COLUMNS)


# ---------------------------------------------------------------------------- the server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    database_url: str

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(database_url: str, redis_url: str, workers: int) -> Server:
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "AUTH_JWT_SECRET": JWT_SECRET,
        "CREDENTIALS_ENCRYPTION_KEYS": CredentialCipher.generate_key(),
        "LOG_LEVEL": "WARNING",
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "app.main:app_factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, env=env, cwd=ROOT)
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


# ---------------------------------------------------------------------------- the load

_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of one process, from /proc (0 where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


class CpuProbe:
    """CPU used by the API processes and by their PostgreSQL backends, sampled from /proc every
    0.2 s during a run (same host only), and the database connections opened meanwhile."""

    def __init__(self, server_pid: int, database_url: str) -> None:
        self.server_pid = server_pid
        self.database_url = database_url
        self._baseline: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._sessions = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None

    async def _read(self) -> dict[str, float]:
        assert self._conn is not None
        backends = await self._conn.fetch(
            "SELECT pid FROM pg_stat_activity "
            "WHERE application_name = 'omni-sales' AND datname = current_database()"
        )
        cpu = {
            f"api:{pid}": _cpu_seconds(pid)
            for pid in (self.server_pid, *_children(self.server_pid))
        }
        cpu.update({f"db:{row['pid']}": _cpu_seconds(row["pid"]) for row in backends})
        return cpu

    async def _sessions_opened(self) -> int:
        assert self._conn is not None
        # pg_stat_database.sessions counts every connection ever made to the database.
        value = await self._conn.fetchval(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        )
        return int(value or 0)

    async def _loop(self) -> None:
        while not self._stop.is_set():
            self._last.update(await self._read())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 0.2)

    async def start(self) -> None:
        self._conn = await asyncpg.connect(asyncpg_dsn(self.database_url))
        self._baseline = await self._read()
        self._last = dict(self._baseline)
        self._sessions = await self._sessions_opened()
        self._stop.clear()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> tuple[float, float, int]:
        """API CPU seconds, PostgreSQL CPU seconds, connections opened since start()."""
        self._stop.set()
        if self._task is not None:
            await self._task
        self._last.update(await self._read())
        await asyncio.sleep(0.6)  # the statistics collector flushes about every 0.5 s
        sessions = await self._sessions_opened() - self._sessions
        assert self._conn is not None
        await self._conn.close()

        def used(kind: str) -> float:
            return sum(
                seconds - self._baseline.get(key, 0.0)
                for key, seconds in self._last.items()
                if key.startswith(kind + ":")
            )

        return used("api"), used("db"), sessions


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    latencies: list[float]
    errors: int
    cpu_api: float
    cpu_db: float
    cpu_client: float
    connections_opened: int

    def row(self) -> str:
        ordered = sorted(self.latencies)
        p50 = statistics.median(ordered) * 1000
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
        rate = self.requests / self.seconds
        api, db, client = (
            cpu / self.requests * 1000 for cpu in (self.cpu_api, self.cpu_db, self.cpu_client)
        )
        return (
            f"| {self.name:<30} | {self.requests:>8} | {rate:>7.0f} | {p50:>6.1f} | {p99:>6.1f} "
            f"| {self.errors:>6} | {api:>7.2f} | {db:>10.2f} | {client:>9.2f} "
            f"| {self.connections_opened:>8} |"
        )


HEADER = (
    f"| {'scenario':<30} | {'requests':>8} | {'req/s':>7} | {'p50 ms':>6} | {'p99 ms':>6} "
    f"| {'errors':>6} | {'API CPU':>7} | {'PostgreSQL':>10} | {'load gen.':>9} "
    f"| {'new DB connections':>8} |\n"
    f"|{'-' * 32}|{'-' * 9}:|{'-' * 8}:|{'-' * 7}:|{'-' * 7}:|{'-' * 7}:|{'-' * 8}:"
    f"|{'-' * 11}:|{'-' * 10}:|{'-' * 19}:|"
)

Request = tuple[str, dict[str, str | int], dict[str, str]]


async def drive(
    base_url: str,
    name: str,
    make_request: Callable[[int], Request],
    total: int,
    concurrency: int,
    probe: CpuProbe,
) -> Result:
    """`total` requests from `concurrency` clients, each with its own keep-alive connection."""
    latencies: list[float] = []
    errors = 0
    # URLs are encoded before the clock starts: the load generator shares the CPUs it measures.
    prepared = []
    for n in range(total):
        path, params, headers = make_request(n)
        prepared.append((f"{path}?{urlencode(params)}", headers))
    queue = iter(prepared)

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal errors
        for url, headers in queue:
            began = time.perf_counter()
            response = await client.get(url, headers=headers)
            latencies.append(time.perf_counter() - began)
            if response.status_code != 200:
                errors += 1

    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [
        httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) for _ in range(concurrency)
    ]
    await probe.start()
    client_cpu = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(client_loop(client) for client in clients))
    seconds = time.perf_counter() - started
    client_cpu = time.process_time() - client_cpu
    api_cpu, db_cpu, connections = await probe.stop()
    for client in clients:
        await client.aclose()
    return Result(name, total, seconds, latencies, errors, api_cpu, db_cpu, client_cpu, connections)


async def collect_cursors(
    base_url: str, tokens: dict[str, dict[str, str]], users: list[str], page: int, limit: int
) -> list[tuple[str, str]]:
    """Follow nextCursor from the first page to page `page` for each user (not timed)."""
    found = []
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        for owner in users:
            cursor: str | None = None
            for _ in range(page - 1):
                params: dict[str, str | int] = {"userId": owner, "limit": limit}
                if cursor:
                    params["cursor"] = cursor
                response = await client.get(
                    "/api/marketplace/orders", params=params, headers=tokens[owner]
                )
                cursor = response.json()["pagination"]["nextCursor"]
                if cursor is None:
                    break
            if cursor is not None:
                found.append((owner, cursor))
    return found


async def run_scenarios(server: Server, requests: int, concurrency: int) -> list[Result]:
    base_url = server.base_url
    probe = CpuProbe(server.process.pid, server.database_url)
    users = [user_id(n) for n in range(USERS)]
    tokens = {
        u: {"Authorization": "Bearer " + issue_token(u, ttl=timedelta(hours=2), secret=JWT_SECRET)}
        for u in users
    }
    rng = random.Random(7)
    picks = [rng.choice(users) for _ in range(requests)]
    path = "/api/marketplace/orders"
    cursors = await collect_cursors(base_url, tokens, users[:200], page=18, limit=50)

    def first_page(n: int) -> Request:
        return path, {"userId": picks[n], "limit": 50, "offset": 0}, tokens[picks[n]]

    def platform_page(n: int) -> Request:
        params: dict[str, str | int] = {"userId": picks[n], "platformCode": PLATFORMS[n % 3]}
        return path, params, tokens[picks[n]]

    def deep_offset(n: int) -> Request:
        return path, {"userId": picks[n], "limit": 50, "offset": 900}, tokens[picks[n]]

    def deep_cursor(n: int) -> Request:
        owner, cursor = cursors[n % len(cursors)]
        return path, {"userId": owner, "limit": 50, "cursor": cursor}, tokens[owner]

    def first_page_no_total(n: int) -> Request:
        return path, {"userId": picks[n], "includeTotal": "false"}, tokens[picks[n]]

    scenarios = [
        ("first page", first_page),
        ("first page, platformCode", platform_page),
        ("deep offset (900 of ~1000)", deep_offset),
        ("deep cursor (page 18)", deep_cursor),
        ("first page, includeTotal=false", first_page_no_total),
    ]
    # Warm-up: connection pools, prepared statements, page cache.
    await drive(base_url, "warm-up", first_page, min(requests, 1000), concurrency, probe)
    results = [
        await drive(base_url, name, make, requests, concurrency, probe) for name, make in scenarios
    ]
    # Service time without queueing: one client, one request at a time.
    results.append(
        await drive(base_url, "first page, 1 client", first_page, requests // 5, 1, probe)
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--requests", type=int, default=5_000, help="per scenario")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    database_url = os.environ.get(
        "BENCH_DATABASE_URL", "postgresql://root@127.0.0.1:5432/omni_bench"
    )
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    run_migrations(sqlalchemy_url(database_url))
    asyncio.run(build_dataset(database_url))
    for workers in args.workers:
        server = start_server(database_url, redis_url, workers)
        try:
            results = uvloop.run(run_scenarios(server, args.requests, args.concurrency))
        finally:
            server.stop()
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(
            f"\nGET /api/marketplace/orders: {args.concurrency} concurrent clients, {workers} "
            f"uvicorn worker(s), {os.cpu_count()} CPUs, load average after the run {load}.\n"
            "CPU columns: milliseconds per request; new DB connections: opened by the API "
            "while the scenario ran (pool churn)"
        )
        print(HEADER)
        for result in results:
            print(result.row())


if __name__ == "__main__":
    main()
