"""Each marketplace's authorization flow end to end: start, the sandbox's authorization page
(followed over real HTTP), the callback, and the connection it leaves."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.authorize.router import router as authorize_router
from app.authorize.service import sign_state, verify_state
from app.config import Settings
from app.connections.credentials import decrypt_credentials
from app.connections.service import list_platforms
from app.crypto import CredentialCipher
from app.models import MarketplaceConnection, MarketplaceSyncLog
from app.models.connect_grant import MarketplaceConnectGrant
from app.models.connect_state import MarketplaceConnectState
from app.platforms.types import PlatformCode
from tests.conftest import (
    ENCRYPTION_KEY,
    RunningSandbox,
    auth_headers,
    connection_body,
    create_sandbox_shop,
    make_settings,
    run_burst,
    running_app,
)

USER = "seller-flow"
FRONTEND = "https://app.example/connected"
SHOPEE_PARTNER_ID, SHOPEE_PARTNER_KEY = "2999001", "operator-shopee-partner-key"
LAZADA_APP_KEY, LAZADA_APP_SECRET = "399001", "operator-lazada-app-secret"
META_APP_ID, META_APP_SECRET = "499000000000001", "operator-meta-app-secret"
OPERATOR = {
    "SHOPEE_PARTNER_ID": SHOPEE_PARTNER_ID,
    "SHOPEE_PARTNER_KEY": SHOPEE_PARTNER_KEY,
    "LAZADA_APP_KEY": LAZADA_APP_KEY,
    "LAZADA_APP_SECRET": LAZADA_APP_SECRET,
    "META_APP_ID": META_APP_ID,
    "META_APP_SECRET": META_APP_SECRET,
}


@pytest.fixture
def flow_settings(database_url: str, redis_url: str, sandbox: RunningSandbox) -> Settings:
    return make_settings(
        database_url,
        redis_url,
        sandbox,
        CONNECT_REDIRECT_URL="https://app.example/home",
        PUBLIC_BASE_URL="http://omni.test",
        **OPERATOR,
    )


@pytest.fixture
async def api(flow_settings: Settings, clean: None) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(flow_settings) as client:
        app: Any = client.app  # type: ignore[attr-defined]
        if not any(
            getattr(r, "path", "").startswith("/api/marketplace/connect/") for r in app.routes
        ):
            app.include_router(authorize_router)  # until app.main includes it
        yield client


def new_shop(sandbox: RunningSandbox, platform: str) -> str:
    """A shop of the operator's app in the sandbox; returns its shop id."""
    sets = sandbox.sandboxes
    if platform == "shopee":
        return sets.shopee.add_shop(
            partner_id=int(SHOPEE_PARTNER_ID), partner_key=SHOPEE_PARTNER_KEY
        )["shopId"]
    if platform == "lazada":
        return sets.lazada.add_shop(app_key=LAZADA_APP_KEY, app_secret=LAZADA_APP_SECRET)["shopId"]
    page = sets.facebook.add_page(page_id=str(610_000_000_000_000 + secrets.randbelow(10**9)))
    page.app_id, page.app_secret = META_APP_ID, META_APP_SECRET
    return page.page_id


PICK = {"shopee": "shop_id", "lazada": "seller_id", "facebook": "page_id"}


async def start(
    api: httpx.AsyncClient, platform: str, *, user: str = USER, **body: Any
) -> dict[str, str]:
    response = await api.post(
        f"/api/marketplace/connect/{platform}/start",
        json={"userId": user, "redirectUrl": FRONTEND, **body},
        headers=auth_headers(user),
    )
    assert response.status_code == 200, response.text
    data: dict[str, str] = response.json()["data"]
    return data


async def authorize(url: str, **page_params: str) -> str:
    """What the seller's browser does on the platform's page: returns where it is sent back."""
    url += "&" + urlencode(page_params) if page_params else ""
    async with httpx.AsyncClient() as browser:
        page = await browser.get(url)
    assert page.status_code == 302, page.text
    return page.headers["location"]


async def follow_callback(api: httpx.AsyncClient, location: str) -> dict[str, list[str]]:
    parts = urlsplit(location)
    response = await api.get(f"{parts.path}?{parts.query}")
    assert response.status_code == 302, response.text
    back = urlsplit(response.headers["location"])
    return {"_to": [f"{back.scheme}://{back.netloc}{back.path}"], **parse_qs(back.query)}


async def complete(api: httpx.AsyncClient, grant: str, *, user: str = USER) -> httpx.Response:
    return await api.post(
        "/api/marketplace/connect/complete",
        json={"userId": user, "grant": grant},
        headers=auth_headers(user),
    )


async def finish(api: httpx.AsyncClient, result: dict[str, list[str]]) -> list[str]:
    """What the frontend does where the callback sent the browser: complete the flow with the
    user's token. Returns the ids of the connections it made."""
    assert list(result) == ["_to", "grant", "platform"], result
    [grant] = result["grant"]
    response = await complete(api, grant)
    assert response.status_code == 201, response.text
    return [c["id"] for c in response.json()["data"]]


async def connect(
    api: httpx.AsyncClient, platform: str, shop_id: str, **page_params: str
) -> dict[str, list[str]]:
    flow = await start(api, platform)
    location = await authorize(flow["authorizationUrl"], **{PICK[platform]: shop_id}, **page_params)
    return await follow_callback(api, location)


async def connect_and_finish(api: httpx.AsyncClient, platform: str, shop_id: str) -> list[str]:
    result = await connect(api, platform, shop_id)
    assert "error" not in result, result
    return await finish(api, result)


async def connections(
    session_factory: async_sessionmaker[AsyncSession],
) -> list[MarketplaceConnection]:
    async with session_factory() as session:
        return list(await session.scalars(select(MarketplaceConnection)))


@pytest.mark.parametrize("platform", ["shopee", "lazada", "facebook"])
async def test_flow_connects_the_shop_and_starts_its_first_sync(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    flow_settings: Settings,
    platform: str,
) -> None:
    shop_id = new_shop(sandbox, platform)
    result = await connect(api, platform, shop_id)
    assert result["_to"] == [FRONTEND]
    assert result["platform"] == [platform]
    assert await connections(session_factory) == []  # nothing before the completion call
    [connection_id] = await finish(api, result)
    [connection] = await connections(session_factory)
    assert str(connection.id) == connection_id
    assert (connection.user_id, connection.platform_code) == (USER, platform)
    assert connection.shop_id == shop_id
    assert connection.status == "active" and connection.is_active
    assert connection.country == (None if platform == "facebook" else "TH")
    stored = decrypt_credentials(connection, CredentialCipher([ENCRYPTION_KEY]))
    assert (
        stored.api_key
        == OPERATOR[
            next(
                k
                for k in OPERATOR
                if k.startswith(
                    {"shopee": "SHOPEE", "lazada": "LAZADA", "facebook": "META"}[platform]
                )
            )
        ]
    )
    assert stored.access_token
    async with session_factory() as session:
        logs = (
            await session.scalars(
                select(MarketplaceSyncLog).where(MarketplaceSyncLog.connection_id == connection.id)
            )
        ).all()
    assert len(logs) == 1  # its first sync, queued
    await run_burst(flow_settings)
    async with session_factory() as session:
        [log] = (await session.scalars(select(MarketplaceSyncLog))).all()
    assert (log.connection_id, log.status) == (connection.id, "success")


async def test_connecting_the_same_shop_again_refreshes_its_connection(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    shop_id = new_shop(sandbox, "shopee")
    first = await connect_and_finish(api, "shopee", shop_id)
    cipher = CredentialCipher([ENCRYPTION_KEY])
    [before] = await connections(session_factory)
    async with session_factory() as session:
        await session.execute(
            update(MarketplaceConnection).values(status="reauth_required", status_reason="x")
        )
        await session.execute(update(MarketplaceSyncLog).values(status="failed"))
        await session.commit()
    second = await connect_and_finish(api, "shopee", shop_id)
    assert second == first
    [after] = await connections(session_factory)
    assert after.status == "active"
    new_token = decrypt_credentials(after, cipher).access_token
    assert new_token != decrypt_credentials(before, cipher).access_token
    async with session_factory() as session:
        triggers = (await session.scalars(select(MarketplaceSyncLog.trigger))).all()
    assert sorted(triggers) == ["catch_up", "manual"]


async def test_lazada_seller_in_two_countries_gets_one_connection_per_country(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    base = 700_000_000 + secrets.randbelow(10**8)
    sellers = {"TH": str(base), "MY": str(base + 1)}
    sandbox.sandboxes.authorize.add_lazada_account(
        app_key=LAZADA_APP_KEY, app_secret=LAZADA_APP_SECRET, sellers=sellers
    )
    assert len(await connect_and_finish(api, "lazada", sellers["MY"])) == 2
    rows = await connections(session_factory)
    assert {(c.country, c.shop_id) for c in rows} == set(sellers.items())
    # The Malaysian seller exists only on the MY gateway: its shop check went there.
    my_gateway = sandbox.sandboxes.lazada_abroad["my"]
    assert my_gateway.calls["/seller/get"] >= 1


async def test_refused_consent_connects_nothing(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    for platform in ("shopee", "lazada", "facebook"):
        result = await connect(api, platform, new_shop(sandbox, platform), deny="1")
        assert result["error"] == ["consent_refused"]
        assert result["_to"] == [FRONTEND]
    assert await connections(session_factory) == []


async def test_replayed_state_is_refused(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    flow = await start(api, "lazada")
    location = await authorize(flow["authorizationUrl"], seller_id=new_shop(sandbox, "lazada"))
    first = await follow_callback(api, location)
    replay = await follow_callback(api, location)
    assert replay["error"] == ["invalid_state"]
    assert len(await finish(api, first)) == 1
    assert len(await connections(session_factory)) == 1


async def test_forged_state_is_refused(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    flow = await start(api, "facebook")
    location = await authorize(flow["authorizationUrl"], page_id=new_shop(sandbox, "facebook"))
    nonce, expires, _ = flow["state"].split(".")
    forged = f"{nonce}.{expires}.{'A' * 43}"
    result = await follow_callback(api, location.replace(flow["state"], forged))
    # Unsigned: refused before anything is looked up, so it goes to CONNECT_REDIRECT_URL.
    assert result == {"_to": ["https://app.example/home"], "error": ["invalid_state"]}
    # A state of another platform's flow is refused too.
    other = location.replace("/connect/facebook/", "/connect/lazada/")
    assert (await follow_callback(api, other))["error"] == ["invalid_state"]
    assert await connections(session_factory) == []


async def test_expired_state_is_refused(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    flow_settings: Settings,
) -> None:
    flow = await start(api, "shopee")
    location = await authorize(flow["authorizationUrl"], shop_id=new_shop(sandbox, "shopee"))
    async with session_factory() as session:
        await session.execute(
            update(MarketplaceConnectState).values(
                expires_at=datetime.now(UTC) - timedelta(seconds=1)
            )
        )
        await session.commit()
    assert (await follow_callback(api, location))["error"] == ["invalid_state"]
    assert await connections(session_factory) == []
    # A state whose signed expiry has passed is refused without the database.
    stale = sign_state(flow_settings, PlatformCode.SHOPEE, uuid.uuid4(), 1_000_000_000)
    assert verify_state(flow_settings, PlatformCode.SHOPEE, stale) is None


async def test_failed_exchange_connects_nothing(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    flow = await start(api, "shopee")
    shop_id = new_shop(sandbox, "shopee")
    location = await authorize(flow["authorizationUrl"], shop_id=shop_id)
    other_shop = new_shop(sandbox, "shopee")  # the code was issued for shop_id only
    result = await follow_callback(
        api, location.replace(f"shop_id={shop_id}", f"shop_id={other_shop}")
    )
    assert result["error"] == ["exchange_failed"]
    assert await connections(session_factory) == []


async def test_start_refuses_a_platform_without_operator_app(
    database_url: str, redis_url: str, sandbox: RunningSandbox, clean: None
) -> None:
    settings = make_settings(database_url, redis_url, sandbox)
    async with running_app(settings) as client:
        client.app.include_router(authorize_router)  # type: ignore[attr-defined]
        response = await client.post(
            "/api/marketplace/connect/shopee/start",
            json={"userId": USER},
            headers=auth_headers(USER),
        )
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "connect_flow_not_configured"
        other_user = await client.post(
            "/api/marketplace/connect/shopee/start",
            json={"userId": "someone-else"},
            headers=auth_headers(USER),
        )
        assert other_user.status_code == 403


async def test_paste_form_uses_operator_app_unless_it_brings_its_own(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    flow_settings: Settings,
) -> None:
    cipher = CredentialCipher([ENCRYPTION_KEY])
    # A shop of the operator's app, pasted with its tokens only.
    operator_shop = sandbox.sandboxes.shopee.add_shop(
        partner_id=int(SHOPEE_PARTNER_ID), partner_key=SHOPEE_PARTNER_KEY
    )
    body = connection_body(USER, "shopee", operator_shop)
    del body["apiKey"], body["apiSecret"]
    response = await api.post("/api/marketplace/connections", json=body, headers=auth_headers(USER))
    assert response.status_code == 201, response.text
    assert response.json()["data"]["country"] == "TH"
    # A shop of another app: its own apiKey/apiSecret override the operator's.
    own = await create_sandbox_shop(sandbox, "shopee")
    response = await api.post(
        "/api/marketplace/connections",
        json=connection_body(USER, "shopee", own),
        headers=auth_headers(USER),
    )
    assert response.status_code == 201, response.text
    keys = {
        c.shop_id: decrypt_credentials(c, cipher).api_key
        for c in await connections(session_factory)
    }
    assert keys == {operator_shop["shopId"]: SHOPEE_PARTNER_ID, own["shopId"]: own["apiKey"]}
    # Half an app is not completed with the operator's other half.
    half = connection_body(USER, "shopee", await create_sandbox_shop(sandbox, "shopee"))
    del half["apiSecret"]
    response = await api.post("/api/marketplace/connections", json=half, headers=auth_headers(USER))
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["error"]["fields"]] == ["apiSecret"]
    # The connect form says so.
    async with session_factory() as session:
        forms = {p.code: p for p in await list_platforms(session, flow_settings)}
        plain = {p.code: p for p in await list_platforms(session)}
    assert "apiKey" in {f.name for f in forms["shopee"].optional_fields}
    assert "apiKey" not in {f.name for f in forms["shopee"].required_fields}
    assert "apiKey" in {f.name for f in plain["shopee"].required_fields}


async def test_states_are_stored_once_per_start(
    api: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    first, second = await start(api, "lazada"), await start(api, "lazada")
    assert first["state"] != second["state"]
    async with session_factory() as session:
        count = await session.scalar(select(func.count(MarketplaceConnectState.id)))
    assert count == 2


# --- hardening (issue 17) --------------------------------------------------------------------

ATTACKER, VICTIM = "seller-who-starts", "seller-who-approves"


async def test_a_flow_started_by_one_user_never_connects_another_users_shop(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    victims_shop = new_shop(sandbox, "shopee")
    # B starts a flow and gets A to open its link; A approves on the marketplace's page and
    # A's browser comes back through the callback.
    flow = await start(api, "shopee", user=ATTACKER)
    location = await authorize(flow["authorizationUrl"], shop_id=victims_shop)
    result = await follow_callback(api, location)
    assert await connections(session_factory) == []  # nothing lands in B's account
    [grant] = result["grant"]
    # A's frontend completes with A's token: the grant is B's, so it is refused and destroyed.
    refused = await complete(api, grant, user=VICTIM)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "grant_not_yours"
    gone = await complete(api, grant, user=ATTACKER)
    assert gone.status_code == 410, gone.text
    assert gone.json()["error"]["code"] == "grant_expired"
    assert await connections(session_factory) == []


async def test_a_grant_works_once_and_for_ten_minutes(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    result = await connect(api, "lazada", new_shop(sandbox, "lazada"))
    [grant] = result["grant"]
    assert result["platform"] == ["lazada"]
    first = await complete(api, grant)
    assert first.status_code == 201, first.text
    again = await complete(api, grant)
    assert again.status_code == 410 and again.json()["error"]["code"] == "grant_expired"
    assert len(await connections(session_factory)) == 1
    # A grant left for more than ten minutes is expired, and stores nothing.
    result = await connect(api, "facebook", new_shop(sandbox, "facebook"))
    async with session_factory() as session:
        await session.execute(
            update(MarketplaceConnectGrant).values(
                expires_at=datetime.now(UTC) - timedelta(seconds=1)
            )
        )
        await session.commit()
    late = await complete(api, result["grant"][0])
    assert late.status_code == 410 and late.json()["error"]["code"] == "grant_expired"
    assert len(await connections(session_factory)) == 1
    unknown = await complete(api, secrets.token_urlsafe(32))
    assert unknown.status_code == 410


async def test_without_a_redirect_url_the_callback_shows_how_to_complete(
    database_url: str,
    redis_url: str,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    clean: None,
) -> None:
    settings = make_settings(
        database_url, redis_url, sandbox, PUBLIC_BASE_URL="http://omni.test", **OPERATOR
    )
    async with running_app(settings) as client:
        response = await client.post(
            "/api/marketplace/connect/shopee/start",
            json={"userId": USER},
            headers=auth_headers(USER),
        )
        assert response.status_code == 200, response.text
        location = await authorize(
            response.json()["data"]["authorizationUrl"], shop_id=new_shop(sandbox, "shopee")
        )
        parts = urlsplit(location)
        page = await client.get(f"{parts.path}?{parts.query}")
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-store"
        assert "POST /api/marketplace/connect/complete" in page.text
        [grant] = re.findall(r'"grant": "([A-Za-z0-9_-]{40,})"', page.text)
        assert await connections(session_factory) == []
        done = await complete(client, grant)
        assert done.status_code == 201, done.text
        # With nowhere to redirect to, a failure is the error itself.
        replay = await client.get(f"{parts.path}?{parts.query}")
        assert replay.status_code == 400
        assert replay.json()["error"]["code"] == "invalid_state"
    assert len(await connections(session_factory)) == 1


async def test_redirect_url_must_be_on_the_allowlist(
    database_url: str, redis_url: str, sandbox: RunningSandbox, clean: None
) -> None:
    async def started(settings: Settings, redirect_url: str) -> httpx.Response:
        async with running_app(settings) as client:
            return await client.post(
                "/api/marketplace/connect/lazada/start",
                json={"userId": USER, "redirectUrl": redirect_url},
                headers=auth_headers(USER),
            )

    base = {"PUBLIC_BASE_URL": "http://omni.test", **OPERATOR}
    # Nothing configured: no redirect URL is acceptable (it used to accept any).
    bare = make_settings(database_url, redis_url, sandbox, **base)
    refused = await started(bare, "https://attacker.example/steal")
    assert refused.status_code == 422, refused.text
    assert [f["field"] for f in refused.json()["error"]["fields"]] == ["redirectUrl"]
    # CORS_ORIGINS does not widen it.
    cors = make_settings(
        database_url, redis_url, sandbox, CORS_ORIGINS=["https://attacker.example"], **base
    )
    assert (await started(cors, "https://attacker.example/steal")).status_code == 422
    # Default: CONNECT_REDIRECT_URL's origin only.
    home = make_settings(
        database_url, redis_url, sandbox, CONNECT_REDIRECT_URL="https://app.example/home", **base
    )
    assert (await started(home, "https://app.example/other")).status_code == 200
    assert (await started(home, "https://app.example.attacker.example/")).status_code == 422
    # The allow-list, when set, is the list.
    listed = make_settings(
        database_url,
        redis_url,
        sandbox,
        CONNECT_REDIRECT_ALLOWLIST="https://shop.example, https://admin.example:8443",
        **base,
    )
    assert (await started(listed, "https://admin.example:8443/done")).status_code == 200
    assert (await started(listed, "https://admin.example/done")).status_code == 422
    assert (await started(listed, "javascript:alert(1)")).status_code == 422


async def test_every_malformed_state_is_invalid_state(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    flow = await start(api, "lazada")
    location = await authorize(flow["authorizationUrl"], seller_id=new_shop(sandbox, "lazada"))
    nonce, expires, signature = flow["state"].split(".")
    for bad in (
        f"{nonce}.{'9' * 4300}.{signature}",
        f"{nonce}.{'9' * 5000}.{signature}",
        f"{nonce}.\u00b2\u00b3.{signature}",  # digits to str.isdigit, not to int()
        f"{nonce}.{expires}.{signature}.",
        f"\u0e01.{expires}.{signature}",
        "..",
        "",
    ):
        query = urlencode({"code": "x", "state": bad})
        response = await api.get(f"/api/marketplace/connect/lazada/callback?{query}")
        assert response.status_code == 302, (bad[:40], response.text)
        assert "error=invalid_state" in response.headers["location"]
    # The real state still works afterwards.
    assert "grant" in await follow_callback(api, location)


async def test_connect_flow_not_configured_names_the_missing_settings(
    database_url: str, redis_url: str, sandbox: RunningSandbox, clean: None
) -> None:
    async def error_of(settings: Settings, platform: str) -> dict[str, Any]:
        async with running_app(settings) as client:
            response = await client.post(
                f"/api/marketplace/connect/{platform}/start",
                json={"userId": USER},
                headers=auth_headers(USER),
            )
        assert response.status_code == 422, response.text
        error: dict[str, Any] = response.json()["error"]
        assert error["code"] == "connect_flow_not_configured"
        return error

    bare = make_settings(database_url, redis_url, sandbox)
    error = await error_of(bare, "shopee")
    assert error["missingSettings"] == [
        "SHOPEE_PARTNER_ID",
        "SHOPEE_PARTNER_KEY",
        "PUBLIC_BASE_URL",
    ]
    assert "SHOPEE_PARTNER_KEY" in error["message"] and "PUBLIC_BASE_URL" in error["message"]
    assert (await error_of(bare, "facebook"))["missingSettings"][:2] == [
        "META_APP_ID",
        "META_APP_SECRET",
    ]
    apps_only = make_settings(database_url, redis_url, sandbox, **OPERATOR)
    assert (await error_of(apps_only, "lazada"))["missingSettings"] == ["PUBLIC_BASE_URL"]


async def test_pasted_lazada_connection_has_its_country_and_starts_its_first_sync(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    shop = await create_sandbox_shop(sandbox, "lazada")
    body = connection_body(USER, "lazada", shop)
    del body["startSync"]  # as a seller's frontend sends it
    response = await api.post(
        "/api/marketplace/connections",
        json=body,
        headers=auth_headers(USER),
    )
    assert response.status_code == 201, response.text
    assert response.json()["data"]["country"] == "TH"
    [connection] = await connections(session_factory)
    assert connection.country == "TH"
    async with session_factory() as session:
        logs = (await session.scalars(select(MarketplaceSyncLog))).all()
    assert [(log.connection_id, log.trigger) for log in logs] == [(connection.id, "manual")]


async def test_local_lazada_seller_connects_only_its_own_country(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    base = 720_000_000 + secrets.randbelow(10**7)
    # A Thai seller whose token answer lists a Malaysian id first, unknown to the MY gateway.
    sellers = {"MY": str(base), "TH": str(base + 1)}
    sandbox.sandboxes.authorize.add_lazada_account(
        app_key=LAZADA_APP_KEY,
        app_secret=LAZADA_APP_SECRET,
        sellers=sellers,
        token_country="th",
        not_on_gateway=["MY"],
    )
    ids = await connect_and_finish(api, "lazada", sellers["TH"])
    rows = await connections(session_factory)
    assert [str(c.id) for c in rows] == ids
    assert [(c.country, c.shop_id) for c in rows] == [("TH", sellers["TH"])]


async def test_cross_border_seller_keeps_every_country_whose_check_passes(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    base = 740_000_000 + secrets.randbelow(10**7)
    sellers = {"SG": str(base), "TH": str(base + 1), "MY": str(base + 2)}
    sandbox.sandboxes.authorize.add_lazada_account(
        app_key=LAZADA_APP_KEY,
        app_secret=LAZADA_APP_SECRET,
        sellers=sellers,
        not_on_gateway=["SG"],  # its check fails
    )
    result = await connect(api, "lazada", sellers["TH"])
    assert "error" not in result, result
    response = await complete(api, result["grant"][0])
    assert response.status_code == 201, response.text
    body = response.json()
    assert sorted((c["country"], c["shopId"]) for c in body["data"]) == [
        ("MY", sellers["MY"]),
        ("TH", sellers["TH"]),
    ]
    [skipped] = body["skipped"]
    assert (skipped["country"], skipped["shopId"]) == ("SG", sellers["SG"])
    assert skipped["message"]
    assert {(c.country, c.shop_id) for c in await connections(session_factory)} == {
        ("MY", sellers["MY"]),
        ("TH", sellers["TH"]),
    }


async def test_facebook_check_asks_whose_page_token_it_is(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    mine = await create_sandbox_shop(sandbox, "facebook")
    other = await create_sandbox_shop(sandbox, "facebook")
    # My Page token, pasted under another Page's id (any token can read a Page's name).
    body = connection_body(USER, "facebook", mine) | {"shopId": other["shopId"]}
    response = await api.post("/api/marketplace/connections", json=body, headers=auth_headers(USER))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "marketplace_connection_failed"
    assert (error["shopId"], error["platformShopId"]) == (other["shopId"], mine["shopId"])
    assert await connections(session_factory) == []
