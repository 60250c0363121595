"""TikTok Shop as one more channel, against its sandbox over real HTTP: the authorization page
and completion step, a synced shop in the orders list and the analytics summary, and the stock
mover pushing a master SKU's figure to TikTok's warehouse."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from app.config import Settings
from app.connections.credentials import decrypt_credentials
from app.crypto import CredentialCipher
from app.models import MarketplaceConnection
from app.platforms.tiktok import client as tiktok_client
from tests.analytics.helpers import analytics_app
from tests.conftest import (
    ENCRYPTION_KEY,
    RunningSandbox,
    auth_headers,
    connection_body,
    create_sandbox_shop,
    make_settings,
    running_worker,
)

USER = "seller-tiktok"
APP_KEY, APP_SECRET = "ttapp0001", "operator-tiktok-app-secret"


@pytest.fixture
def tiktok_settings(database_url: str, redis_url: str, sandbox: RunningSandbox) -> Settings:
    sandbox.sandboxes.tiktok.faults.reset()
    tiktok_client._CIPHERS.clear()
    return make_settings(
        database_url,
        redis_url,
        sandbox,
        PUBLIC_BASE_URL="http://omni.test",
        CONNECT_REDIRECT_URL="https://app.example/home",
        TIKTOK_APP_KEY=APP_KEY,
        TIKTOK_APP_SECRET=APP_SECRET,
    )


@pytest.fixture
async def api(tiktok_settings: Settings, clean: None) -> AsyncIterator[httpx.AsyncClient]:
    async with analytics_app(tiktok_settings) as client:
        yield client


HEADERS = auth_headers(USER)


@pytest.fixture
async def worker(tiktok_settings: Settings, api: httpx.AsyncClient) -> AsyncIterator[None]:
    async with running_worker(tiktok_settings):
        yield


async def test_platforms_lists_tiktok_with_its_fields(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/marketplace/platforms")
    assert response.status_code == 200
    [tiktok] = [p for p in response.json()["data"] if p["code"] == "tiktok"]
    names = {f["name"] for f in tiktok["requiredFields"]} | {
        f["name"] for f in tiktok.get("optionalFields", [])
    }
    assert {"shopId", "accessToken", "refreshToken"} <= names
    assert all(f["label"] and f["hint"] for f in tiktok["requiredFields"])
    # The form speaks TikTok's words for the app's key and secret (INTERFACE.md); with the
    # operator's app configured here, they are optional.
    assert {"appKey", "appSecret"} <= names
    assert not {"apiKey", "apiSecret"} & names
    assert "shopCipher" in {f["name"] for f in tiktok["optionalFields"]}


async def test_a_half_pasted_app_is_reported_in_tiktoks_words(
    api: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    shop = await create_sandbox_shop(sandbox, "tiktok")
    body = {
        "userId": USER,
        "platformCode": "tiktok",
        "startSync": False,
        "appKey": shop["apiKey"],
        "accessToken": shop["accessToken"],
        "refreshToken": shop["refreshToken"],
        "shopId": shop["shopId"],
    }
    response = await api.post("/api/marketplace/connections", json=body, headers=HEADERS)
    assert response.status_code == 422, response.text
    assert "appSecret" in response.text and "apiSecret" not in response.text
    bad_key = await api.post(
        "/api/marketplace/connections",
        json={**body, "appKey": "not a key!", "appSecret": "s"},
        headers=HEADERS,
    )
    assert bad_key.status_code == 422, bad_key.text
    assert [f["field"] for f in bad_key.json()["error"]["fields"]] == ["appKey"]


async def test_authorization_page_then_complete_connects_the_shop(
    api: httpx.AsyncClient, sandbox: RunningSandbox, session_factory: Any
) -> None:
    shop = sandbox.sandboxes.tiktok.add_shop(
        app_key=APP_KEY, app_secret=APP_SECRET, name="ร้านทดสอบ TikTok"
    )
    start = await api.post(
        "/api/marketplace/connect/tiktok/start", json={"userId": USER}, headers=HEADERS
    )
    assert start.status_code == 200, start.text
    url = start.json()["data"]["authorizationUrl"]
    assert urlsplit(url).path.endswith("/tiktok/open/authorize")
    async with httpx.AsyncClient() as browser:
        page = await browser.get(url)
    assert page.status_code == 302
    back = urlsplit(page.headers["location"])
    callback = await api.get(f"{back.path}?{back.query}")
    assert callback.status_code == 302, callback.text
    [grant] = parse_qs(urlsplit(callback.headers["location"]).query)["grant"]
    done = await api.post(
        "/api/marketplace/connect/complete", json={"userId": USER, "grant": grant}, headers=HEADERS
    )
    assert done.status_code == 201, done.text
    [connection] = done.json()["data"]
    assert connection["platformCode"] == "tiktok"
    assert connection["shopId"] == shop["shopId"]
    assert connection["shopName"] == "ร้านทดสอบ TikTok"
    async with session_factory() as session:
        row = await session.get(MarketplaceConnection, connection["id"])
        assert row is not None
        assert row.api_base_url and row.api_base_url.endswith("/tiktok")
        stored = decrypt_credentials(row, CredentialCipher([ENCRYPTION_KEY]))
    assert stored.api_key == APP_KEY
    # Token get answers absolute expiry times: about 7 days from now.
    assert stored.access_expires_at is not None
    assert (
        timedelta(days=6)
        < stored.access_expires_at - datetime.now(UTC)
        <= timedelta(days=7, minutes=1)
    )


async def test_refused_consent_connects_nothing(
    api: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    sandbox.sandboxes.tiktok.add_shop(app_key=APP_KEY, app_secret=APP_SECRET)
    start = await api.post(
        "/api/marketplace/connect/tiktok/start", json={"userId": USER}, headers=HEADERS
    )
    async with httpx.AsyncClient() as browser:
        page = await browser.get(start.json()["data"]["authorizationUrl"] + "&deny=1")
    back = urlsplit(page.headers["location"])
    callback = await api.get(f"{back.path}?{back.query}")
    assert parse_qs(urlsplit(callback.headers["location"]).query)["error"] == ["consent_refused"]
    listed = await api.get("/api/marketplace/connections", headers=HEADERS)
    assert listed.json()["data"] == []


async def paste(api: httpx.AsyncClient, credentials: dict[str, str]) -> dict[str, Any]:
    response = await api.post(
        "/api/marketplace/connections",
        json=connection_body(USER, "tiktok", credentials),
        headers=HEADERS,
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def test_a_wrong_app_secret_is_a_clear_connection_error(
    api: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    credentials = await create_sandbox_shop(sandbox, "tiktok")
    response = await api.post(
        "/api/marketplace/connections",
        json=connection_body(USER, "tiktok", {**credentials, "apiSecret": "wrong"}),
        headers=HEADERS,
    )
    assert response.status_code == 400, response.text
    assert "app secret" in response.text


async def test_synced_tiktok_orders_show_in_the_orders_list_and_analytics(
    api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None
) -> None:
    credentials = await create_sandbox_shop(sandbox, "tiktok", order_count=60, days=10)
    connection = await paste(api, credentials)
    assert connection["shopName"] == credentials["shopName"]  # the check names the shop
    synced = await api.post(
        "/api/marketplace/sync-orders",
        json={"connectionId": connection["id"], "userId": USER},
        headers=HEADERS,
    )
    assert synced.status_code in (200, 202), synced.text
    log_id = synced.json()["data"]["syncLogId"]
    for _ in range(200):
        log = (await api.get(f"/api/marketplace/sync-logs/{log_id}", headers=HEADERS)).json()
        if log["data"]["status"] != "running":
            break
        await asyncio.sleep(0.1)
    assert (log["data"]["status"], log["data"]["ordersCreated"]) == ("success", 60)
    listed = await api.get(
        "/api/marketplace/orders",
        params={"userId": USER, "platform": "tiktok", "limit": 100},
        headers=HEADERS,
    )
    assert listed.status_code == 200, listed.text
    orders = listed.json()["data"]
    assert len(orders) == 60 and {o["platformCode"] for o in orders} == {"tiktok"}
    tiktok_shop = sandbox.sandboxes.tiktok.shops[credentials["shopId"]].shop
    for row in orders:
        seeded = tiktok_shop.get(int(row["externalOrderId"]))
        assert seeded is not None
        assert Decimal(row["total"]) == seeded.total  # exact money, in minor units
        # One line per unit on the wire, folded back into quantities.
        assert sum(i["quantity"] for i in row["items"]) == sum(i.quantity for i in seeded.items)
    today = datetime.now(UTC).date()
    summary = await api.get(
        "/api/marketplace/analytics/summary",
        params={"userId": USER, "from": str(today - timedelta(days=11)), "to": str(today)},
        headers=HEADERS,
    )
    assert summary.status_code == 200, summary.text
    [row] = [p for p in summary.json()["data"]["platforms"] if p["platformCode"] == "tiktok"]
    assert row["orders"] > 0


async def test_pasted_credentials_in_tiktoks_own_names_connect(
    api: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    shop = await create_sandbox_shop(sandbox, "tiktok")
    body = {
        "userId": USER,
        "platformCode": "tiktok",
        "startSync": False,
        "appKey": shop["apiKey"],
        "appSecret": shop["apiSecret"],
        "accessToken": shop["accessToken"],
        "refreshToken": shop["refreshToken"],
        "shopId": shop["shopId"],
        "shopCipher": shop["shopCipher"],
    }
    response = await api.post("/api/marketplace/connections", json=body, headers=HEADERS)
    assert response.status_code == 201, response.text
    assert response.json()["data"]["shopName"] == shop["shopName"]


async def test_a_pasted_shop_cipher_is_checked_kept_and_used(
    api: httpx.AsyncClient, sandbox: RunningSandbox, session_factory: Any, worker: None
) -> None:
    shop = await create_sandbox_shop(sandbox, "tiktok", order_count=5, days=3)
    body = {
        **connection_body(USER, "tiktok", shop),
        "shopCipher": "ROW_not-this-shops-cipher",
    }
    wrong = await api.post("/api/marketplace/connections", json=body, headers=HEADERS)
    assert wrong.status_code == 400, wrong.text
    assert "shopCipher" in wrong.text
    assert (await api.get("/api/marketplace/connections", headers=HEADERS)).json()["data"] == []

    body["shopCipher"] = shop["shopCipher"]
    created = await api.post("/api/marketplace/connections", json=body, headers=HEADERS)
    assert created.status_code == 201, created.text
    connection_id = created.json()["data"]["id"]
    async with session_factory() as session:
        row = await session.get(MarketplaceConnection, connection_id)
        assert row is not None and row.shop_cipher == shop["shopCipher"]
    # A worker with no cipher in memory takes the stored one: no shop-list call to sync.
    tiktok_client._CIPHERS.clear()
    calls = sandbox.sandboxes.tiktok.calls
    calls.clear()
    synced = await api.post(
        "/api/marketplace/sync-orders",
        json={"connectionId": connection_id, "userId": USER},
        headers=HEADERS,
    )
    log_id = synced.json()["data"]["syncLogId"]
    for _ in range(200):
        log = (await api.get(f"/api/marketplace/sync-logs/{log_id}", headers=HEADERS)).json()
        if log["data"]["status"] != "running":
            break
        await asyncio.sleep(0.1)
    assert log["data"]["status"] == "success", log
    assert not [path for path in calls if path.endswith("/shops")], calls


async def test_an_authorized_shop_keeps_the_cipher_tiktok_gave(
    api: httpx.AsyncClient, sandbox: RunningSandbox, session_factory: Any
) -> None:
    sandbox.sandboxes.tiktok.add_shop(app_key=APP_KEY, app_secret=APP_SECRET)
    start = await api.post(
        "/api/marketplace/connect/tiktok/start", json={"userId": USER}, headers=HEADERS
    )
    async with httpx.AsyncClient() as browser:
        page = await browser.get(start.json()["data"]["authorizationUrl"])
    back = urlsplit(page.headers["location"])
    callback = await api.get(f"{back.path}?{back.query}")
    [grant] = parse_qs(urlsplit(callback.headers["location"]).query)["grant"]
    done = await api.post(
        "/api/marketplace/connect/complete", json={"userId": USER, "grant": grant}, headers=HEADERS
    )
    assert done.status_code == 201, done.text
    [connection] = done.json()["data"]
    given = sandbox.sandboxes.tiktok.shops[connection["shopId"]].cipher
    async with session_factory() as session:
        row = await session.get(MarketplaceConnection, connection["id"])
        assert row is not None and row.shop_cipher == given
