"""Ship and label many orders per platform against the sandboxes; figures printed, none
asserted.

    python bench/fulfillment.py                  # 500 orders per platform
    python bench/fulfillment.py --orders 100     # a short run

One process: the sandboxes behind uvicorn on a loopback port, the API over ASGI and one arq
worker in the same event loop. Per platform: place the orders on a new sandbox shop, connect
and sync it (not timed), then time `POST /api/marketplace/fulfillments` until every
fulfillment is shipped, and `POST /api/marketplace/labels` (100 orders per request) for the
airway bills. "calls" counts the marketplace calls the sandbox answered in each phase.
PostgreSQL: BENCH_DATABASE_URL (default `omni_bench_fulfillment`, rebuilt by the migrations);
Redis: BENCH_REDIS_URL (default db 14, flushed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
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
from app.config import ClientTuning, Settings  # noqa: E402
from app.crypto import CredentialCipher  # noqa: E402
from app.jobs import redis_settings  # noqa: E402
from app.main import create_app  # noqa: E402
from app.sandbox.app import SandboxSet, base_urls, build_app  # noqa: E402
from app.worker import create_worker  # noqa: E402

DEFAULT_DB = "postgresql+asyncpg://root@127.0.0.1:5432/omni_bench_fulfillment"
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"
SECRET = "bench-jwt-secret-" + "s" * 32
USER = "bench-seller"
LABELS_PER_REQUEST = 100


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


# Tracking reads run in the background after a ship; they belong to neither phase.
TRACKING_PATH = "/api/v2/logistics/get_tracking_number"


def sandbox_calls(sandboxes: SandboxSet) -> int:
    return (
        sum(n for path, n in sandboxes.shopee.calls.items() if path != TRACKING_PATH)
        + sum(sandboxes.lazada.calls.values())
        + len(sandboxes.facebook.post_paths)
        + sum(sandboxes.tiktok.calls.values())
    )


async def wait_shipped(api: httpx.AsyncClient, headers: dict[str, str], count: int) -> int:
    """Polls until no fulfillment is `requested`; returns how many are shipped."""
    while True:
        response = await api.get(
            "/api/marketplace/fulfillments",
            params={"userId": USER, "status": "requested", "limit": 1},
            headers=headers,
        )
        if not response.json()["data"]:
            break
        await asyncio.sleep(0.05)
    shipped = 0
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"userId": USER, "status": "shipped", "limit": 200}
        if cursor:
            params["cursor"] = cursor
        page = (
            await api.get("/api/marketplace/fulfillments", params=params, headers=headers)
        ).json()
        shipped += len(page["data"])
        cursor = page["pagination"]["nextCursor"]
        if not cursor:
            return shipped


async def run_platform(
    platform: str,
    count: int,
    api: httpx.AsyncClient,
    sandboxes: SandboxSet,
    root: str,
    headers: dict[str, str],
) -> None:
    async with httpx.AsyncClient(base_url=root, timeout=60) as control:
        credentials = (
            await control.post(f"/{platform}/_sandbox/shops", json={"orderCount": 0, "days": 1})
        ).json()
        placed = await control.post(
            f"/{platform}/_sandbox/orders", json={"shopId": credentials["shopId"], "count": count}
        )
        placed.raise_for_status()
    # The bench syncs by hand below, so the connection does not start its own first sync.
    body: dict[str, Any] = {"userId": USER, "platformCode": platform, "startSync": False}
    body |= {
        k: v
        for k, v in credentials.items()
        if k in ("shopId", "apiKey", "apiSecret", "accessToken", "refreshToken")
    }
    connection = (
        await api.post("/api/marketplace/connections", json=body, headers=headers)
    ).json()["data"]
    synced = await api.post(
        "/api/marketplace/sync-orders",
        json={"connectionId": connection["id"], "userId": USER},
        headers=headers,
    )
    assert synced.json()["data"]["status"] == "success", synced.text
    ids: list[int] = []
    while len(ids) < count:
        page = await api.get(
            "/api/marketplace/orders",
            params={
                "userId": USER,
                "connectionId": connection["id"],
                "limit": 200,
                "offset": len(ids),
            },
            headers=headers,
        )
        ids += [o["id"] for o in page.json()["data"]]
    ship_body: dict[str, Any] = {"userId": USER, "orderIds": ids, "method": "dropoff"}
    if platform == "facebook":
        ship_body = {
            "userId": USER,
            "orderIds": ids,
            "method": "tracking",
            "carrier": "KERRY_EXPRESS_THAILAND",
            "trackingNumbers": {str(i): f"KEX{i:09d}" for i in ids},
        }
    shipped_before = await wait_shipped(api, headers, 0)
    before = sandbox_calls(sandboxes)
    started = time.perf_counter()
    response = await api.post("/api/marketplace/fulfillments", json=ship_body, headers=headers)
    assert response.status_code == 202, response.text
    shipped = await wait_shipped(api, headers, count) - shipped_before
    ship_seconds = time.perf_counter() - started
    ship_calls = sandbox_calls(sandboxes) - before
    line = (
        f"{platform:9s} ship  {count} orders: {ship_seconds:6.2f} s, "
        f"{ship_calls} marketplace calls, {shipped} shipped"
    )
    print(line, flush=True)
    if platform == "facebook":
        print(f"{platform:9s} label: Meta prints no airway bills", flush=True)
        return
    before = sandbox_calls(sandboxes)
    started = time.perf_counter()
    for start in range(0, count, LABELS_PER_REQUEST):
        chunk = ids[start : start + LABELS_PER_REQUEST]
        answer = await api.post(
            "/api/marketplace/labels", json={"userId": USER, "orderIds": chunk}, headers=headers
        )
        assert answer.status_code == 200, answer.text
    label_seconds = time.perf_counter() - started
    label_calls = sandbox_calls(sandboxes) - before
    print(
        f"{platform:9s} label {count} orders: {label_seconds:6.2f} s, "
        f"{label_calls} marketplace calls, {-(-count // LABELS_PER_REQUEST)} PDFs",
        flush=True,
    )


async def main(args: argparse.Namespace) -> None:
    db_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
    await reset_database(db_url)
    redis = await create_pool(redis_settings(redis_url))
    await redis.flushdb()
    await redis.aclose()
    sandboxes = SandboxSet()
    port = free_port()
    sandbox_server = uvicorn.Server(
        uvicorn.Config(build_app(sandboxes), host="127.0.0.1", port=port, log_level="warning")
    )
    serving = asyncio.create_task(sandbox_server.serve())
    while not sandbox_server.started:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    root = f"http://127.0.0.1:{port}"
    key = CredentialCipher.generate_key()
    settings = Settings(
        DATABASE_URL=db_url,
        REDIS_URL=redis_url,
        AUTH_JWT_SECRET=SecretStr(SECRET),
        CREDENTIALS_ENCRYPTION_KEYS=[SecretStr(key)],
        SYNC_WAIT_SECONDS=120,
        FULFILLMENT_TRACKING_RETRY_SECONDS=3600,  # tracking reads are not part of the figures
        clients=ClientTuning(calls_per_second=1000),
        **base_urls(root),
    )
    app = create_app(settings)
    headers = {
        "Authorization": f"Bearer {issue_token(USER, ttl=timedelta(hours=2), secret=SECRET)}"
    }
    worker = create_worker(settings, handle_signals=False, poll_delay=0.01)
    worker_task = asyncio.create_task(worker.async_run())
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://omni.bench", timeout=300
            ) as api:
                for platform in args.platforms:
                    await run_platform(platform, args.orders, api, sandboxes, root, headers)
    finally:
        worker_task.cancel()
        await asyncio.gather(worker_task, return_exceptions=True)
        with contextlib.suppress(asyncio.CancelledError):
            await worker.close()
        sandbox_server.should_exit = True
        await serving


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument(
        "--platforms", nargs="+", default=["shopee", "lazada", "facebook", "tiktok"]
    )
    asyncio.run(main(parser.parse_args()))
