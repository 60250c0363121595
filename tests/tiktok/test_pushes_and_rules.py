"""TikTok Shop pushes on its own path (signature, duplicates, unknown shop) and the sandbox's
rules as the client meets them (token expiry mid-sync, rate limits, a wrong shop cipher)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.models import MarketplaceWebhook
from app.platforms.base import MemoryTokenStore
from app.platforms.registry import build_client
from app.platforms.tiktok import client as tiktok_client
from app.platforms.tiktok.auth import push_signature
from app.platforms.types import Credentials, PlatformCode
from tests.conftest import (
    RunningSandbox,
    auth_headers,
    connection_body,
    create_sandbox_shop,
    make_settings,
    running_app,
)

USER = "seller-1"


@pytest.fixture
def settings(database_url: str, redis_url: str, sandbox: RunningSandbox) -> Settings:
    sandbox.sandboxes.tiktok.faults.reset()
    tiktok_client._CIPHERS.clear()
    return make_settings(database_url, redis_url, sandbox, PUBLIC_BASE_URL="http://omni.test")


@pytest.fixture
async def api(settings: Settings, clean: None) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(settings) as client:
        yield client


def push(shop_id: str, order_id: str = "576486316948490001", notification: str = "73271") -> bytes:
    body = {
        "type": 1,
        "tts_notification_id": notification,
        "shop_id": shop_id,
        "timestamp": int(time.time()),
        "data": {"order_id": order_id, "order_status": "AWAITING_SHIPMENT", "update_time": 1},
    }
    return json.dumps(body, separators=(",", ":")).encode()


async def test_pushes_on_the_tiktok_path_are_verified_and_stored_once(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    credentials = await create_sandbox_shop(sandbox, "tiktok")
    created = await api.post(
        "/api/marketplace/connections",
        json=connection_body(USER, "tiktok", credentials),
        headers=auth_headers(USER),
    )
    assert created.status_code == 201, created.text
    body = push(credentials["shopId"])
    good = {"Authorization": push_signature(credentials["apiKey"], credentials["apiSecret"], body)}
    for path in ("/api/webhooks/marketplace/tiktok", "/api/webhooks/marketplace"):
        response = await api.post(path, content=body, headers=good)
        assert (response.status_code, response.content) == (200, b"")
    bad = await api.post(
        "/api/webhooks/marketplace/tiktok", content=body, headers={"Authorization": "0" * 64}
    )
    assert bad.status_code == 401
    unsigned_over_body_only = push_signature(
        credentials["apiKey"], credentials["apiSecret"], body, "none"
    )
    other = await api.post(
        "/api/webhooks/marketplace/tiktok",
        content=body,
        headers={"Authorization": unsigned_over_body_only},
    )
    assert other.status_code == 401
    stranger = push("7999999999999999999")
    unknown = await api.post(
        "/api/webhooks/marketplace/tiktok",
        content=stranger,
        headers={
            "Authorization": push_signature(
                credentials["apiKey"], credentials["apiSecret"], stranger
            )
        },
    )
    assert unknown.status_code == 401
    async with session_factory() as session:
        rows = list(await session.scalars(select(MarketplaceWebhook)))
    assert [(r.platform_code, r.event_type) for r in rows] == [("tiktok", "order_status_change")]


def credentials_of(shop: dict[str, str]) -> Credentials:
    return Credentials(
        shop_id=shop["shopId"],
        api_key=shop["apiKey"],
        api_secret=shop["apiSecret"],
        access_token=shop["accessToken"],
        refresh_token=shop["refreshToken"],
    )


async def test_an_expired_token_mid_sync_is_refreshed_once_and_the_sync_completes(
    sandbox: RunningSandbox, settings: Settings
) -> None:
    shop = await create_sandbox_shop(sandbox, "tiktok", order_count=250, days=5)
    store = MemoryTokenStore(credentials_of(shop))
    state = sandbox.sandboxes.tiktok
    state.faults.update({"expire_tokens_next": 1, "fail_next_rate_limit": 2})
    now = datetime.now(UTC)
    async with build_client(
        PlatformCode.TIKTOK, store.credentials, settings, token_store=store
    ) as client:
        seen = [
            o.external_order_id
            async for p in client.iter_orders(now - timedelta(days=6), now)
            for o in p.orders
        ]
    assert len(seen) == len(set(seen)) == 250
    assert store.refresh_count == 1
    assert store.credentials.access_token != shop["accessToken"]


async def test_a_wrong_cipher_is_refused_by_the_sandbox(
    sandbox: RunningSandbox, settings: Settings
) -> None:
    shop = await create_sandbox_shop(sandbox, "tiktok", order_count=3)
    async with build_client(PlatformCode.TIKTOK, credentials_of(shop), settings) as client:
        tiktok_client._CIPHERS[(client.config.base_url, shop["shopId"])] = "ROW_wrong"
        with pytest.raises(Exception, match="shop_cipher"):
            await client.get_orders(["1"])


async def test_pushed_orders_are_read_with_the_syncs_search_call(
    sandbox: RunningSandbox, settings: Settings
) -> None:
    """A drain's bulk read lists the update window (100 full orders a call) instead of one
    detail call per 50 ids; ids the window does not return are read by id."""
    from app.platforms.base import ReadHint

    shop = await create_sandbox_shop(sandbox, "tiktok", order_count=300, days=2)
    seeded = sandbox.sandboxes.tiktok.shops[shop["shopId"]].shop
    recent = [seeded.order(i) for _, i in seeded.update_index()[-150:]]
    since = min(o.updated_at for o in recent) - timedelta(seconds=1)
    calls = sandbox.sandboxes.tiktok.calls
    calls.clear()
    async with build_client(PlatformCode.TIKTOK, credentials_of(shop), settings) as client:
        read = await client.fetch_orders_by_ids(
            [str(o.order_id) for o in recent] + ["999"], ReadHint(updated_since=since)
        )
    assert sorted(o.external_order_id for o in read.orders) == sorted(
        str(o.order_id) for o in recent
    )
    searches = sum(n for path, n in calls.items() if path.endswith("orders/search"))
    details = sum(n for path, n in calls.items() if path.endswith("/orders"))
    assert searches <= 3 and details == 1  # the unknown id alone is read by id


async def test_the_push_signature_prefix_is_a_setting(
    database_url: str, redis_url: str, sandbox: RunningSandbox, clean: None
) -> None:
    """TIKTOK_WEBHOOK_SIGN_PREFIX=none: pushes signed over the body alone verify, and the
    default form (app key + body) no longer does."""
    settings = make_settings(database_url, redis_url, sandbox, TIKTOK_WEBHOOK_SIGN_PREFIX="none")
    credentials = await create_sandbox_shop(sandbox, "tiktok")
    async with running_app(settings) as api:
        created = await api.post(
            "/api/marketplace/connections",
            json=connection_body(USER, "tiktok", credentials),
            headers=auth_headers(USER),
        )
        assert created.status_code == 201, created.text
        body = push(credentials["shopId"])
        key, secret = credentials["apiKey"], credentials["apiSecret"]
        default_form = await api.post(
            "/api/webhooks/marketplace/tiktok",
            content=body,
            headers={"Authorization": push_signature(key, secret, body)},
        )
        assert default_form.status_code == 401
        body_only = await api.post(
            "/api/webhooks/marketplace/tiktok",
            content=body,
            headers={"Authorization": push_signature(key, secret, body, "none")},
        )
        assert body_only.status_code == 200
