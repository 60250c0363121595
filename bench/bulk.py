"""Bulk stock changes: how long `POST /api/marketplace/inventory/bulk` takes for N rows (new
SKUs, then the same SKUs updated), JSON and CSV.

    python -m bench.bulk [--rows 5000]

Uses BENCH_DATABASE_URL (default postgresql://root@127.0.0.1:5432/omni_bench_bulk; its schema
is migrated and its inventory rows of the bench user deleted first) and BENCH_REDIS_URL
(default redis://127.0.0.1:6379/15). The API runs in-process over ASGI. Figures are printed,
never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import subprocess
import sys
import time
from datetime import timedelta

import asyncpg
import httpx
from pydantic import SecretStr

from app.auth import issue_token
from app.config import Settings
from app.main import create_app

USER = "bench-bulk"
SECRET = "bench-bulk-secret-at-least-32-bytes-long"


async def _prepare(database_url: str) -> None:
    admin = database_url.rsplit("/", 1)[0] + "/postgres"
    name = database_url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(admin)
    if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
        await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()


def _migrate(database_url: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        check=True,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
    )


async def _empty(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    await conn.execute(
        "DELETE FROM stock_ledger WHERE master_sku_id IN "
        "(SELECT id FROM inventory_skus WHERE user_id = $1)",
        USER,
    )
    await conn.execute("DELETE FROM inventory_skus WHERE user_id = $1", USER)
    await conn.close()


async def main(rows: int, database_url: str) -> None:
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
    await _empty(database_url)
    settings = Settings(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        AUTH_JWT_SECRET=SecretStr(SECRET),
        CREDENTIALS_ENCRYPTION_KEYS=[SecretStr(base64.urlsafe_b64encode(b"k" * 32).decode())],
        MAX_BODY_BYTES=16 * 1024 * 1024,
    )
    token = issue_token(USER, ttl=timedelta(hours=1), secret=SECRET)
    headers = {"Authorization": f"Bearer {token}"}
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", timeout=600
        ) as api:
            for label, figure in (("create", 5), ("update", 7)):
                items = [{"sku": f"B-{n}", "available": figure + n % 3} for n in range(rows)]
                started = time.perf_counter()
                response = await api.post(
                    "/api/marketplace/inventory/bulk",
                    json={"userId": USER, "items": items},
                    headers=headers,
                )
                elapsed = time.perf_counter() - started
                assert response.status_code == 200, response.text[:300]
                print(f"JSON {label:6} {rows} rows: {elapsed:.2f} s ({rows / elapsed:.0f} rows/s)")
            body = "sku,available,buffer\n" + "".join(f"B-{n},9,1\n" for n in range(rows))
            started = time.perf_counter()
            response = await api.post(
                "/api/marketplace/inventory/bulk",
                params={"userId": USER},
                content=body.encode(),
                headers={**headers, "content-type": "text/csv"},
            )
            elapsed = time.perf_counter() - started
            assert response.status_code == 200, response.text[:300]
            print(f"CSV  update {rows} rows: {elapsed:.2f} s ({rows / elapsed:.0f} rows/s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5000)
    url = os.environ.get("BENCH_DATABASE_URL", "postgresql://root@127.0.0.1:5432/omni_bench_bulk")
    asyncio.run(_prepare(url))
    _migrate(url)
    asyncio.run(main(parser.parse_args().rows, url))
