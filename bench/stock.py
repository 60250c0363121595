"""Stock in step: from an order stored on one channel (Shopee) to the push reaching the other
two sandbox channels (Lazada and Meta show the new figure). Figures printed, none asserted.

    python bench/stock.py                          # 1,000 orders, 200 SKUs, 20 orders/s
    python bench/stock.py --orders 100 --rate 20   # a short run

One process: the three sandboxes behind uvicorn on a loopback port, the API over ASGI (for
connections and product syncs), `--workers` arq workers in the same event loop, and orders
written through `upsert_orders` (the path syncs and webhooks take), each in its own
committed transaction. The clock stops when both other sandboxes hold a figure at or below
what that order left. PostgreSQL: BENCH_DATABASE_URL (default `omni_bench_stock`, rebuilt by
the migrations); Redis: BENCH_REDIS_URL (default db 14, flushed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from arq import create_pool  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine  # noqa: E402

from app.auth import issue_token  # noqa: E402
from app.cli import run_migrations  # noqa: E402
from app.config import Settings  # noqa: E402
from app.crypto import CredentialCipher  # noqa: E402
from app.inventory import tasks as inventory_tasks  # noqa: E402
from app.inventory.router import router as inventory_router  # noqa: E402
from app.jobs import redis_settings  # noqa: E402
from app.main import create_app  # noqa: E402
from app.orders.ingest import upsert_orders  # noqa: E402
from app.platforms.types import NormalizedOrder, OrderItem, OrderStatus  # noqa: E402
from app.products import tasks as product_tasks  # noqa: E402
from app.products.router import router as products_router  # noqa: E402
from app.sandbox.app import SandboxSet, base_urls, build_app  # noqa: E402
from app.sandbox.seed import SeededShop  # noqa: E402
from app.worker import FUNCTIONS, create_worker  # noqa: E402

DEFAULT_DB = "postgresql+asyncpg://root@127.0.0.1:5432/omni_bench_stock"
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"
SECRET = "bench-jwt-secret-" + "s" * 32
USER = "bench-seller"
START_STOCK = 100_000


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


def order_for(number: int, sku: str) -> NormalizedOrder:
    now = datetime.now(UTC)
    return NormalizedOrder(
        external_order_id=f"BENCH-{number}",
        status=OrderStatus.PENDING,
        raw_status="READY_TO_SHIP",
        currency="THB",
        created_at=now,
        updated_at=now,
        subtotal=Decimal("100"),
        shipping_fee=Decimal("0"),
        discount=Decimal("0"),
        total=Decimal("100"),
        items=[OrderItem(sku=sku, name="bench", quantity=1, unit_price=Decimal("100"))],
    )


async def main(args: argparse.Namespace) -> None:
    db_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
    await reset_database(db_url)
    redis = await create_pool(redis_settings(redis_url))
    await redis.flushdb()

    # Enough seeded products for the SKU count on every shop (1 to 4 variations each).
    product_count = max(10, args.skus // 2)
    sandboxes = SandboxSet()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(build_app(sandboxes), host="127.0.0.1", port=port, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event
        await asyncio.sleep(0.02)
    root = f"http://127.0.0.1:{port}"
    settings = Settings(
        DATABASE_URL=db_url,
        REDIS_URL=redis_url,
        AUTH_JWT_SECRET=SecretStr(SECRET),
        CREDENTIALS_ENCRYPTION_KEYS=[SecretStr(CredentialCipher.generate_key())],
        SYNC_WAIT_SECONDS=120,
        **base_urls(root),
    )
    shops: dict[str, dict[str, str]] = {
        "shopee": sandboxes.shopee.add_shop(seed="bench", product_count=product_count),
        "lazada": sandboxes.lazada.add_shop(
            shop=SeededShop(seed="bench-lz", product_count=product_count)
        ),
    }
    page = sandboxes.facebook.add_page(seed="bench-fb", product_count=product_count)
    shops["facebook"] = sandboxes.facebook.credentials(page)
    seeded = {
        "lazada": sandboxes.lazada.shops[shops["lazada"]["shopId"]].shop,
        "facebook": page.shop,
    }
    skus = [v.sku for p in seeded["lazada"].products for v in p.variations][: args.skus]

    app = create_app(settings)
    app.include_router(products_router)
    app.include_router(inventory_router)
    functions = [*FUNCTIONS, *product_tasks.FUNCTIONS, *inventory_tasks.FUNCTIONS]
    workers = [
        create_worker(
            settings, functions=functions, cron_jobs=[], handle_signals=False, poll_delay=0.005
        )
        for _ in range(args.workers)
    ]
    running = [asyncio.create_task(w.async_run()) for w in workers]
    headers = {
        "Authorization": "Bearer " + issue_token(USER, ttl=timedelta(hours=2), secret=SECRET)
    }
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as api:
            connections = {}
            for platform, credentials in shops.items():
                body = {"userId": USER, "platformCode": platform, **credentials}
                body = {
                    k: v
                    for k, v in body.items()
                    if k in ("userId", "platformCode", "shopId", "apiKey", "apiSecret")
                    or k in ("accessToken", "refreshToken")
                }
                body["startSync"] = False  # the bench times stock pushes, not a first sync
                created = await api.post("/api/marketplace/connections", json=body, headers=headers)
                created.raise_for_status()
                connections[platform] = created.json()["data"]["id"]
                synced = await api.post(
                    "/api/marketplace/sync-products",
                    json={"connectionId": connections[platform], "userId": USER},
                    headers=headers,
                )
                synced.raise_for_status()
            print(f"{len(skus)} master SKUs on 3 shops; setting each to {START_STOCK}")
            for sku in skus:
                answer = await api.put(
                    f"/api/marketplace/inventory/{sku}",
                    json={"userId": USER, "available": START_STOCK},
                    headers=headers,
                )
                answer.raise_for_status()

            def in_step(sku: str, figure: int) -> bool:
                for shop in seeded.values():
                    found = shop.variation_by_sku(sku)
                    if found is None or found[1].stock > figure:
                        return False
                return True

            while not all(in_step(sku, START_STOCK) for sku in skus):  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            print("all channels in step; placing orders")

            engine = create_async_engine(db_url, pool_size=20)
            sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
            shopee_id = uuid.UUID(connections["shopee"])
            sold: dict[str, int] = dict.fromkeys(skus, 0)
            latencies: list[float] = []
            waiting: list[tuple[str, int, float]] = []
            rng = random.Random(7)

            async def place(number: int) -> None:
                sku = rng.choice(skus)
                sold[sku] += 1
                figure = START_STOCK - sold[sku]
                async with sessionmaker() as session:
                    await upsert_orders(
                        session,
                        [order_for(number, sku)],
                        connection_id=shopee_id,
                        user_id=USER,
                        platform_code="shopee",
                    )
                    await session.commit()
                waiting.append((sku, figure, time.perf_counter()))

            async def watch() -> None:
                while True:
                    now = time.perf_counter()
                    still = []
                    for sku, figure, started in waiting:
                        if in_step(sku, figure):
                            latencies.append(now - started)
                        else:
                            still.append((sku, figure, started))
                    waiting[:] = still
                    await asyncio.sleep(0.005)

            watcher = asyncio.create_task(watch())
            placing = []
            began = time.perf_counter()
            for number in range(args.orders):
                placing.append(asyncio.create_task(place(number)))
                await asyncio.sleep(
                    max(0.0, began + (number + 1) / args.rate - time.perf_counter())
                )
            await asyncio.gather(*placing)
            deadline = time.perf_counter() + 60
            while waiting and time.perf_counter() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            watcher.cancel()
            await engine.dispose()
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)
    for worker in workers:
        # close() gathers the jobs it cancels: a push round cut off mid-way is expected here.
        with contextlib.suppress(asyncio.CancelledError):
            await worker.close()
    server.should_exit = True
    await serving
    await redis.aclose()

    latencies.sort()
    if not latencies:
        print("no order reached the other channels")
        return
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        f"{args.orders} orders over {len(skus)} SKUs at {args.rate}/s, {args.workers} workers: "
        f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms; "
        f"{len(waiting)} never arrived"
    )


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--skus", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="orders per second")
    parser.add_argument("--workers", type=int, default=2)
    asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
