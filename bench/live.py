"""A Facebook live at full speed: buyers comment "CF <code>", the comments signed Page
`feed` webhooks to the API (10 comments per delivery, as Meta batches them), captured by the
webhook jobs and placed by the live's allocation job into orders holding stock.
Figures printed, none asserted.

    python bench/live.py                          # both: 100/s for 60 s, then 50 x 10 in 10 s
    python bench/live.py --case burst             # 500 comments in 10 s (50 buyers x 10)
    python bench/live.py --case sustained --duration 20   # a shorter sustained run

Processes: this one runs the sandboxes (the Send API for replies) and the API behind uvicorn
on loopback ports and sends the comments; `--workers` arq worker processes handle them.
Comment times are whole seconds (as Meta sends them), so ties are broken by comment id.
The latency is from just before a delivery is sent to the commit of each of its comments'
outcome (`live_comments.processed_at`, the database clock); the backlog is the comments sent
and without an outcome yet (sampled every 0.5 s, and when the last delivery was answered).
Oversold counts units held beyond a SKU's starting stock. PostgreSQL: BENCH_DATABASE_URL
(default `omni_bench_live`, rebuilt by the migrations); Redis: BENCH_REDIS_URL (default db 15,
flushed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from arq import create_pool  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine  # noqa: E402

from app.auth import issue_token  # noqa: E402
from app.cli import run_migrations  # noqa: E402
from app.config import Settings  # noqa: E402
from app.crypto import CredentialCipher  # noqa: E402
from app.inventory.router import router as inventory_router  # noqa: E402
from app.jobs import redis_settings  # noqa: E402
from app.live.router import router as live_router  # noqa: E402
from app.main import create_app  # noqa: E402
from app.platforms.facebook.auth import hub_signature_256  # noqa: E402
from app.sandbox.app import SandboxSet, base_urls, build_app  # noqa: E402
from app.sandbox.facebook_live import comment_payload  # noqa: E402

DEFAULT_DB = "postgresql+asyncpg://root@127.0.0.1:5432/omni_bench_live"
DEFAULT_REDIS = "redis://127.0.0.1:6379/15"
SECRET = "bench-jwt-secret-" + "s" * 32
USER = "bench-seller"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def reset_database(url: str) -> None:
    admin = create_async_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    name = url.rsplit("/", 1)[1]
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    await asyncio.to_thread(run_migrations, url)


def run_worker(settings_json: str, max_jobs: int, replies: bool) -> None:
    """A worker process: the webhook, live and stock jobs, and the live sweep (which picks up
    a comment whose allocation job was lost)."""
    from app.inventory import tasks as inventory_tasks
    from app.live import tasks as live_tasks
    from app.worker import FUNCTIONS, create_worker

    values = json.loads(settings_json)
    values["AUTH_JWT_SECRET"] = SecretStr(values["AUTH_JWT_SECRET"])
    values["CREDENTIALS_ENCRYPTION_KEYS"] = [
        SecretStr(k) for k in values["CREDENTIALS_ENCRYPTION_KEYS"]
    ]
    settings = Settings(**values)
    worker = create_worker(
        settings,
        functions=[
            *FUNCTIONS,
            *(f for f in live_tasks.FUNCTIONS if replies or f.name != "send_social_replies"),
            *inventory_tasks.FUNCTIONS,
        ],
        cron_jobs=[c for c in live_tasks.CRON_JOBS if c.name.endswith("sweep_live_comments")],
        handle_signals=True,
        poll_delay=0.01,
        max_jobs=max_jobs,
    )
    profile = os.environ.get("BENCH_PROFILE")
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        try:
            worker.run()
        finally:
            profiler.disable()
            profiler.dump_stats(f"{profile}.{os.getpid()}")
        return
    worker.run()


@dataclass
class Case:
    """One way the comments arrive: `total` comments at `rate` per second from `buyers`."""

    name: str
    total: int
    rate: float
    buyers: int
    # Each buyer's comments in turn (50 buyers x 10) rather than buyers drawn at random.
    round_robin: bool = False


@dataclass
class Bench:
    args: argparse.Namespace
    api: httpx.AsyncClient
    engine: AsyncEngine
    sandboxes: SandboxSet
    page: Any
    connection: dict[str, Any]
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    async def run(self, case: Case) -> None:
        args = self.args
        codes = [f"{case.name[:1].upper()}{n + 1}" for n in range(args.codes)]
        for code in codes:
            response = await self.api.put(
                f"/api/marketplace/inventory/SKU-{code}",
                json={"userId": USER, "available": args.stock},
            )
            response.raise_for_status()
        post_id = f"{self.page.page_id}_{case.name}"
        live = await self.api.post(
            "/api/marketplace/live-sessions",
            json={
                "userId": USER,
                "connectionId": self.connection["id"],
                "postId": post_id,
                "products": [
                    {"code": code, "sku": f"SKU-{code}", "price": "199"} for code in codes
                ],
            },
        )
        live.raise_for_status()
        session_id = live.json()["data"]["id"]
        batch = max(1, args.batch)
        deliveries = [
            list(range(start, min(case.total, start + batch)))
            for start in range(0, case.total, batch)
        ]
        sent_at: dict[str, float] = {}
        accepted = 0
        failures: dict[str, int] = {}
        backlog: list[int] = []

        def change(number: int) -> dict[str, Any]:
            buyer = number % case.buyers if case.round_robin else self.rng.randrange(case.buyers)
            roll = self.rng.random()
            code = self.rng.choice(codes)
            message = "สวัสดีค่ะ" if roll < 0.1 else f"CF {code} x2" if roll < 0.25 else f"cf {code}"
            # Known to the sandbox, so the private replies to it go through.
            comment = self.sandboxes.facebook_live.new_comment(
                self.page,
                post_id,
                message,
                buyer_id=f"buyer-{buyer}",
                buyer_name=f"ผู้ชม {buyer}",
                created_time=int(time.time()),
                comment_id=f"{post_id}_{number:08d}",
            )
            payload = comment_payload(comment)
            changes: list[dict[str, Any]] = payload["entry"][0]["changes"]
            return changes[0]

        async def deliver(numbers: list[int]) -> None:
            nonlocal accepted
            changes = [change(n) for n in numbers]
            payload = {
                "object": "page",
                "entry": [{"id": self.page.page_id, "time": int(time.time()), "changes": changes}],
            }
            body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
            now = time.time()
            for value in changes:
                sent_at[value["value"]["comment_id"]] = now
            try:
                answer = await self.api.post(
                    "/api/webhooks/marketplace/facebook",
                    content=body,
                    headers={
                        "X-Hub-Signature-256": hub_signature_256(self.page.app_secret, body),
                        "Content-Type": "application/json",
                    },
                )
                if answer.status_code == 200:
                    accepted += len(numbers)
                else:
                    key = str(answer.status_code)
                    failures[key] = failures.get(key, 0) + 1
            except httpx.HTTPError as exc:
                failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1

        async def watch() -> None:
            while True:
                await asyncio.sleep(0.5)
                backlog.append(len(sent_at) - await self._done(session_id))

        print(
            f"\n[{case.name}] {case.buyers} buyers, {case.total} comments at {case.rate:g}/s "
            f"({case.total / case.rate:g} s) in deliveries of {batch}, {args.codes} codes x "
            f"{args.stock} units, {args.workers} worker processes"
        )
        watcher = asyncio.create_task(watch())
        started = time.perf_counter()
        tasks = []
        for index, numbers in enumerate(deliveries):
            due = started + index * batch / case.rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(deliver(numbers)))
        await asyncio.gather(*tasks)
        sending = time.perf_counter() - started
        at_end = len(sent_at) - await self._done(session_id)
        deadline = time.perf_counter() + args.drain_seconds
        while await self._done(session_id) < accepted and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        drained = time.perf_counter() - started
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        skus = [f"SKU-{code}" for code in codes]
        await self._report(case, session_id, skus, sent_at, accepted, failures, sending, drained)
        print(
            f"backlog (comments without an outcome): at the last delivery {at_end}, "
            f"most seen {max(backlog, default=at_end)}, "
            f"left {len(sent_at) - await self._done(session_id)}"
        )

    async def _done(self, session_id: str) -> int:
        async with self.engine.connect() as conn:
            done = await conn.scalar(
                text("SELECT count(*) FROM live_comments WHERE session_id = :s AND NOT pending"),
                {"s": session_id},
            )
        return int(done or 0)

    async def _report(
        self,
        case: Case,
        session_id: str,
        skus: list[str],
        sent_at: dict[str, float],
        accepted: int,
        failures: dict[str, int],
        sending: float,
        drained: float,
    ) -> None:
        args = self.args
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT comment_id, extract(epoch FROM processed_at) AS at, outcome, "
                        "pending FROM live_comments WHERE session_id = :s"
                    ),
                    {"s": session_id},
                )
            ).all()
            held = (
                await conn.execute(
                    text(
                        "SELECT COALESCE(sum(reserved), 0), "
                        "COALESCE(sum(requested - reserved), 0) FROM social_order_lines "
                        "WHERE session_id = :s AND active"
                    ),
                    {"s": session_id},
                )
            ).one()
            oversold = await conn.scalar(
                text(
                    "SELECT COALESCE(sum(greatest(0, held - :stock)), 0) FROM ("
                    "SELECT r.master_sku_id, sum(r.quantity) AS held FROM stock_reservations r "
                    "JOIN inventory_skus s ON s.id = r.master_sku_id WHERE r.released_at IS NULL "
                    "AND s.sku = ANY(CAST(:skus AS text[])) GROUP BY r.master_sku_id) AS t"
                ),
                {"stock": args.stock, "skus": skus},
            )
            counters_oversold = await conn.scalar(
                text("SELECT COALESCE(sum(oversold), 0) FROM inventory_skus")
            )
            duplicates = await conn.scalar(
                text(
                    "SELECT count(*) FROM (SELECT comment_row_id FROM social_order_lines "
                    "WHERE active AND session_id = :s GROUP BY comment_row_id, product_id "
                    "HAVING count(*) > 1) d"
                ),
                {"s": session_id},
            )
            # Where the time goes: the webhook pipeline (delivery stored -> its job done, the
            # comments captured) and the allocation after it (-> the outcome), order comments.
            split = (
                await conn.execute(
                    text(
                        "WITH w AS (SELECT w.received_at, w.processed_at, "
                        "ch->'value'->>'comment_id' AS comment_id FROM marketplace_webhooks w, "
                        "jsonb_array_elements(w.payload->'entry'->0->'changes') AS ch) "
                        "SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY "
                        "extract(epoch FROM w.processed_at - w.received_at)) AS pipeline, "
                        "percentile_cont(0.99) WITHIN GROUP (ORDER BY "
                        "extract(epoch FROM c.processed_at - w.processed_at)) AS placing "
                        "FROM live_comments c JOIN w ON w.comment_id = c.comment_id "
                        "WHERE c.session_id = :s AND c.outcome <> 'not_an_order'"
                    ),
                    {"s": session_id},
                )
            ).one()
            orders = await conn.scalar(
                text("SELECT count(*) FROM social_orders WHERE session_id = :s"),
                {"s": session_id},
            )
        latencies = sorted(
            float(row.at) - sent_at[row.comment_id]
            for row in rows
            if row.comment_id in sent_at and not row.pending
        )
        outcomes: dict[str, int] = {}
        for row in rows:
            outcomes[row.outcome] = outcomes.get(row.outcome, 0) + 1

        def pct(p: float) -> float:
            if not latencies:
                return 0.0
            return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

        once = len(rows) == len({r.comment_id for r in rows})
        worst = (latencies[-1] if latencies else 0.0) * 1000
        mean = statistics.fmean(latencies) * 1000 if latencies else 0.0
        print(f"comments sent:          {case.total} in {sending:.1f}s")
        print(f"accepted (200):         {accepted} ({accepted / sending:.1f}/s)")
        print(f"failed sends:           {failures}")
        print(f"captured:               {len(rows)} of {accepted} (each once: {once})")
        print(f"all processed after:    {drained:.1f}s")
        print(f"outcomes:               {outcomes}")
        print(f"live orders:            {orders}")
        print(
            f"delivery -> outcome:    p50 {pct(0.50) * 1000:.0f} ms, "
            f"p99 {pct(0.99) * 1000:.0f} ms, max {worst:.0f} ms (mean {mean:.0f} ms)"
        )
        print(
            f"  of which p99:         webhook stored -> captured "
            f"{float(split.pipeline or 0) * 1000:.0f} ms, captured -> placed "
            f"{float(split.placing or 0) * 1000:.0f} ms (order comments)"
        )
        print(f"units reserved:         {held[0]} of {args.codes * args.stock} in stock")
        print(f"units waiting:          {held[1]}")
        print(f"oversold:               {oversold} (counters: {counters_oversold})")
        print(f"duplicate lines:        {duplicates}")


async def main(args: argparse.Namespace) -> None:
    db_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
    await reset_database(db_url)
    redis = await create_pool(redis_settings(redis_url))
    await redis.flushdb()

    sandboxes = SandboxSet()
    sandbox_port, api_port = free_port(), free_port()
    sandbox_server = uvicorn.Server(
        uvicorn.Config(
            build_app(sandboxes), host="127.0.0.1", port=sandbox_port, log_level="warning"
        )
    )
    serving = [asyncio.create_task(sandbox_server.serve())]
    key = CredentialCipher.generate_key()
    raw_settings: dict[str, Any] = {
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "AUTH_JWT_SECRET": SECRET,
        "CREDENTIALS_ENCRYPTION_KEYS": [key],
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{api_port}",
        **base_urls(f"http://127.0.0.1:{sandbox_port}"),
    }
    settings_json = json.dumps(raw_settings)
    settings = Settings(
        **{
            **raw_settings,
            "AUTH_JWT_SECRET": SecretStr(SECRET),
            "CREDENTIALS_ENCRYPTION_KEYS": [SecretStr(key)],
        }
    )
    app = create_app(settings)
    paths = {getattr(r, "path", "") for r in app.routes}
    if "/api/marketplace/live-sessions" not in paths:
        app.include_router(live_router)
    if "/api/marketplace/inventory/{sku}" not in paths:
        app.include_router(inventory_router)
    api_server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=api_port, log_level="warning")
    )
    serving.append(asyncio.create_task(api_server.serve()))
    while not (sandbox_server.started and api_server.started):  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    engine = create_async_engine(db_url)
    token = issue_token(USER, ttl=timedelta(hours=2), secret=SECRET)
    headers = {"Authorization": f"Bearer {token}"}
    workers: list[asyncio.subprocess.Process] = []
    try:
        for _ in range(args.workers):
            workers.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    __file__,
                    "--worker",
                    settings_json,
                    str(args.jobs),
                    "no-replies" if args.no_replies else "replies",
                )
            )
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}",
            headers=headers,
            timeout=30,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=200),
        ) as api:
            page = sandboxes.facebook.add_page(seed="bench-live", product_count=args.codes)
            credentials = sandboxes.facebook.credentials(page)
            created = await api.post(
                "/api/marketplace/connections",
                json={
                    "userId": USER,
                    "platformCode": "facebook",
                    "startSync": False,  # the bench measures lives, not a first sync
                    **credentials,
                },
            )
            created.raise_for_status()
            bench = Bench(args, api, engine, sandboxes, page, created.json()["data"])
            # Workers ready (arq records its health at start-up) before the live starts.
            while not await redis.exists("arq:queue:health-check"):  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            if args.case in ("sustained", "both"):
                total = int(args.rate * args.duration)
                await bench.run(Case("sustained", total, args.rate, args.buyers))
            if args.case in ("burst", "both"):
                total = args.burst_buyers * args.burst_comments
                await bench.run(
                    Case("burst", total, total / args.burst_seconds, args.burst_buyers, True)
                )
    finally:
        for worker in workers:
            worker.terminate()
        await asyncio.gather(*(w.wait() for w in workers), return_exceptions=True)
        api_server.should_exit = True
        sandbox_server.should_exit = True
        await asyncio.gather(*serving, return_exceptions=True)
        await engine.dispose()
        await redis.aclose()


def cli() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        run_worker(sys.argv[2], int(sys.argv[3]), sys.argv[4] == "replies")
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--case", choices=("sustained", "burst", "both"), default="both", help="which run(s)"
    )
    parser.add_argument("--buyers", type=int, default=300, help="sustained: buyers")
    parser.add_argument("--rate", type=float, default=100.0, help="sustained: comments/s")
    parser.add_argument("--duration", type=float, default=60.0, help="sustained: seconds")
    parser.add_argument("--burst-buyers", type=int, default=50)
    parser.add_argument("--burst-comments", type=int, default=10, help="per buyer")
    parser.add_argument("--burst-seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=10, help="comments per delivery")
    parser.add_argument("--codes", type=int, default=20)
    parser.add_argument("--stock", type=int, default=25, help="units per code")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    # Jobs share the live's lock, so more at once only wait longer (and hold connections).
    parser.add_argument("--jobs", type=int, default=10, help="concurrent jobs per worker")
    parser.add_argument(
        "--no-replies", action="store_true", help="send no Messenger replies (ordering alone)"
    )
    parser.add_argument("--drain-seconds", type=float, default=120.0)
    asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
