"""A Facebook live at full speed: buyers comment "CF <code>", each comment a signed Page
`feed` webhook to the API, processed by arq workers into live orders holding stock.
Figures printed, none asserted.

    python bench/live.py                                  # 300 buyers, 100/s for 60 s
    python bench/live.py --duration 15 --rate 100         # a short run

Processes: this one runs the sandboxes (the Send API for replies) and the API behind uvicorn
on loopback ports and sends the comments; `--workers` arq worker processes handle them.
Comment times are whole seconds (as Meta sends them), so ties are broken by comment id.
The latency is from just before a webhook is sent to the commit of its line on the order
(`live_comments.processed_at`, the database clock). Oversold counts units held beyond a
SKU's starting stock. PostgreSQL: BENCH_DATABASE_URL (default `omni_bench_live`, rebuilt by
the migrations); Redis: BENCH_REDIS_URL (default db 15, flushed).
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
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from app.auth import issue_token  # noqa: E402
from app.cli import run_migrations  # noqa: E402
from app.config import Settings  # noqa: E402
from app.crypto import CredentialCipher  # noqa: E402
from app.inventory.outbox import install_job_sender  # noqa: E402
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
    """A worker process: the webhook, live and stock jobs."""
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
        cron_jobs=[],
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
    app.include_router(live_router)
    app.include_router(inventory_router)
    api_server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=api_port, log_level="warning")
    )
    serving.append(asyncio.create_task(api_server.serve()))
    while not (sandbox_server.started and api_server.started):  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    install_job_sender(redis)
    engine = create_async_engine(db_url)
    token = issue_token(USER, ttl=timedelta(hours=2), secret=SECRET)
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random(7)
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
            connection = created.json()["data"]
            codes = [f"A{n + 1}" for n in range(args.codes)]
            for code in codes:
                response = await api.put(
                    f"/api/marketplace/inventory/SKU-{code}",
                    json={"userId": USER, "available": args.stock},
                )
                response.raise_for_status()
            post_id = f"{page.page_id}_777"
            live = await api.post(
                "/api/marketplace/live-sessions",
                json={
                    "userId": USER,
                    "connectionId": connection["id"],
                    "postId": post_id,
                    "products": [
                        {"code": code, "sku": f"SKU-{code}", "price": "199"} for code in codes
                    ],
                },
            )
            live.raise_for_status()
            session_id = live.json()["data"]["id"]

            total = int(args.rate * args.duration)
            sent_at: dict[str, float] = {}
            accepted = 0
            failures: dict[str, int] = {}

            async def comment(number: int) -> None:
                nonlocal accepted
                buyer = rng.randrange(args.buyers)
                roll = rng.random()
                code = rng.choice(codes)
                message = (
                    "สวัสดีค่ะ" if roll < 0.1 else f"CF {code} x2" if roll < 0.25 else f"cf {code}"
                )
                now = time.time()
                # Known to the sandbox, so the private replies to it go through.
                sandbox_comment = sandboxes.facebook_live.new_comment(
                    page,
                    post_id,
                    message,
                    buyer_id=f"buyer-{buyer}",
                    buyer_name=f"ผู้ชม {buyer}",
                    created_time=int(now),
                    comment_id=f"{post_id}_{number:08d}",
                )
                comment_id = sandbox_comment.comment_id
                payload = comment_payload(sandbox_comment)
                body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
                sent_at[comment_id] = now
                try:
                    answer = await api.post(
                        "/api/webhooks/marketplace/facebook",
                        content=body,
                        headers={
                            "X-Hub-Signature-256": hub_signature_256(page.app_secret, body),
                            "Content-Type": "application/json",
                        },
                    )
                    if answer.status_code == 200:
                        accepted += 1
                    else:
                        failures[str(answer.status_code)] = (
                            failures.get(str(answer.status_code), 0) + 1
                        )
                except httpx.HTTPError as exc:
                    failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1

            print(
                f"live: {args.buyers} buyers, {args.rate}/s for {args.duration}s = "
                f"{total} comments, {args.codes} codes x {args.stock} units, "
                f"{args.workers} worker processes"
            )
            # Workers ready (arq records its health at start-up) before the live starts.
            while not await redis.exists("arq:queue:health-check"):  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            started = time.perf_counter()
            tasks = []
            for number in range(total):
                due = started + number / args.rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(comment(number)))
            await asyncio.gather(*tasks)
            sending = time.perf_counter() - started

            deadline = time.perf_counter() + args.drain_seconds
            async with engine.connect() as conn:
                while True:
                    done = await conn.scalar(
                        text(
                            "SELECT count(*) FROM live_comments "
                            "WHERE session_id = :s AND NOT pending"
                        ),
                        {"s": session_id},
                    )
                    await conn.commit()
                    if done >= accepted or time.perf_counter() > deadline:
                        break
                    await asyncio.sleep(0.2)
                drained = time.perf_counter() - started
                rows = (
                    await conn.execute(
                        text(
                            "SELECT comment_id, extract(epoch FROM processed_at) AS at, outcome "
                            "FROM live_comments WHERE session_id = :s"
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
                        "SELECT master_sku_id, sum(quantity) AS held FROM stock_reservations "
                        "WHERE released_at IS NULL GROUP BY master_sku_id) AS t"
                    ),
                    {"stock": args.stock},
                )
                counters_oversold = await conn.scalar(
                    text("SELECT COALESCE(sum(oversold), 0) FROM inventory_skus")
                )
                duplicates = await conn.scalar(
                    text(
                        "SELECT count(*) FROM (SELECT comment_row_id FROM social_order_lines "
                        "WHERE active GROUP BY comment_row_id, product_id HAVING count(*) > 1) d"
                    )
                )
                # Where the time goes: the webhook pipeline (stored -> job done) and the
                # allocation after it (job done -> line placed, for order comments).
                split = (
                    await conn.execute(
                        text(
                            "SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY "
                            "extract(epoch FROM w.processed_at - w.received_at)) AS pipeline, "
                            "percentile_cont(0.99) WITHIN GROUP (ORDER BY "
                            "extract(epoch FROM c.processed_at - w.processed_at)) "
                            "FILTER (WHERE c.outcome <> 'not_an_order') AS placing "
                            "FROM live_comments c JOIN marketplace_webhooks w ON "
                            "w.payload->'entry'->0->'changes'->0->'value'->>'comment_id' "
                            "= c.comment_id WHERE c.session_id = :s"
                        ),
                        {"s": session_id},
                    )
                ).one()
                orders = await conn.scalar(
                    text("SELECT count(*) FROM marketplace_orders WHERE channel = 'live'")
                )
            latencies = sorted(
                float(row.at) - sent_at[row.comment_id] for row in rows if row.comment_id in sent_at
            )
            outcomes: dict[str, int] = {}
            for row in rows:
                outcomes[row.outcome] = outcomes.get(row.outcome, 0) + 1

            def pct(p: float) -> float:
                return (
                    latencies[min(len(latencies) - 1, int(p * len(latencies)))]
                    if latencies
                    else 0.0
                )

            once = len(rows) == len({r.comment_id for r in rows})
            worst = (latencies[-1] if latencies else 0.0) * 1000
            mean = statistics.fmean(latencies) * 1000 if latencies else 0.0
            print(f"comments sent:          {total} in {sending:.1f}s")
            print(f"accepted (200):         {accepted} ({accepted / sending:.1f}/s)")
            print(f"failed sends:           {failures}")
            print(f"captured:               {len(rows)} of {accepted} (each once: {once})")
            print(f"all processed after:    {drained:.1f}s")
            print(f"outcomes:               {outcomes}")
            print(f"live orders:            {orders}")
            print(
                f"webhook -> line:        p50 {pct(0.50) * 1000:.0f} ms, "
                f"p99 {pct(0.99) * 1000:.0f} ms, max {worst:.0f} ms (mean {mean:.0f} ms)"
            )
            print(
                f"  of which p99:         webhook stored -> processed "
                f"{float(split.pipeline or 0) * 1000:.0f} ms, processed -> line placed "
                f"{float(split.placing or 0) * 1000:.0f} ms"
            )
            print(f"units reserved:         {held[0]} of {args.codes * args.stock} in stock")
            print(f"units waiting:          {held[1]}")
            print(f"oversold:               {oversold} (counters: {counters_oversold})")
            print(f"duplicate lines:        {duplicates}")
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
    parser.add_argument("--buyers", type=int, default=300)
    parser.add_argument("--rate", type=float, default=100.0, help="comments per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of comments")
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
