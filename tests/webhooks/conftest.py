"""Pushes signed as each marketplace signs them, sent to the API over ASGI (or by the sandbox)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.models import MarketplaceWebhook
from tests.conftest import RunningSandbox, make_settings
from tests.sync.conftest import worker, worker_context  # noqa: F401 - shared fixtures

PUBLIC_BASE_URL = "http://omni.test"
VERIFY_TOKEN = "meta-verify-token-for-tests"
PUSH_URL = "/api/webhooks/marketplace"


@pytest.fixture
def settings(database_url: str, redis_url: str, sandbox: RunningSandbox) -> Settings:
    return make_settings(
        database_url,
        redis_url,
        sandbox,
        PUBLIC_BASE_URL=PUBLIC_BASE_URL,
        META_WEBHOOK_VERIFY_TOKEN=SecretStr(VERIFY_TOKEN),
    )


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def shopee_push(shop_id: str, code: int = 3, **data: Any) -> bytes:
    data = data or {"ordersn": "250101AAAAAAAA", "status": "READY_TO_SHIP", "update_time": 1}
    return encode(
        {"data": data, "shop_id": int(shop_id), "code": code, "timestamp": int(time.time())}
    )


def shopee_signature(partner_key: str, body: bytes, path: str = PUSH_URL) -> str:
    url = (PUBLIC_BASE_URL + path).encode()
    return hmac.new(partner_key.encode(), url + b"|" + body, hashlib.sha256).hexdigest()


def lazada_push(seller_id: str, message_type: int = 0, **data: Any) -> bytes:
    data = data or {
        "order_status": "pending",
        "trade_order_id": "1000001",
        "trade_order_line_id": "2000001",
        "status_update_time": 1,
    }
    return encode(
        {
            "seller_id": seller_id,
            "message_type": message_type,
            "data": data,
            "timestamp": int(time.time() * 1000),
        }
    )


def lazada_signature(app_key: str, app_secret: str, body: bytes) -> str:
    return hmac.new(app_secret.encode(), app_key.encode() + body, hashlib.sha256).hexdigest()


def meta_push(page_id: str, field: str = "feed") -> bytes:
    change = {"field": field, "value": {"item": "comment", "verb": "add", "message": "CF A1"}}
    entry = {"id": page_id, "time": int(time.time()), "changes": [change]}
    return encode({"object": "page", "entry": [entry]})


def meta_signature(app_secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def signed(platform: str, credentials: dict[str, str], body: bytes, path: str = PUSH_URL) -> dict:
    """The headers the platform would send with `body`."""
    if platform == "shopee":
        return {"Authorization": shopee_signature(credentials["apiSecret"], body, path)}
    if platform == "lazada":
        return {
            "Authorization": lazada_signature(credentials["apiKey"], credentials["apiSecret"], body)
        }
    return {"X-Hub-Signature-256": meta_signature(credentials["apiSecret"], body)}


def sample_push(platform: str, credentials: dict[str, str]) -> bytes:
    if platform == "shopee":
        return shopee_push(credentials["shopId"])
    if platform == "lazada":
        return lazada_push(credentials["shopId"])
    return meta_push(credentials["shopId"])


async def stored_events(
    session_factory: async_sessionmaker[AsyncSession],
) -> list[MarketplaceWebhook]:
    async with session_factory() as session:
        rows = await session.scalars(select(MarketplaceWebhook).order_by(MarketplaceWebhook.id))
        return list(rows)


@pytest.fixture
def sandbox_to_api(sandbox: RunningSandbox, api: httpx.AsyncClient) -> Iterator[None]:
    """The sandboxes deliver their pushes to this test's API (over ASGI, no network)."""
    app = api.app  # type: ignore[attr-defined]
    sets = sandbox.sandboxes
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    sets.shopee.webhook_transport = httpx.ASGITransport(app=app)
    sets.lazada.webhook_transport = httpx.ASGITransport(app=app)
    sets.facebook.webhook_client = client
    yield
    sets.shopee.webhook_transport = None
    sets.lazada.webhook_transport = None
    sets.facebook.webhook_client = None


@pytest.fixture
async def queued_jobs(
    session_factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[Any]:
    """Drain jobs asked for by committed transactions and not started yet (outbox rows)."""

    async def count() -> int:
        async with session_factory() as session:
            waiting = await session.scalar(
                text(
                    "SELECT count(*) FROM job_outbox WHERE function = 'drain_webhooks' "
                    "AND status IN ('pending', 'sent')"
                )
            )
        return int(waiting or 0)

    yield count
