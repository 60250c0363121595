from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.crypto import CredentialCipher
from app.models import MarketplaceConnection
from tests.conftest import (
    ENCRYPTION_KEY,
    RunningSandbox,
    auth_headers,
    connection_body,
    create_sandbox_shop,
    make_settings,
    running_app,
)

USER = "seller-1"
OTHER = "seller-2"


async def connect(
    api: httpx.AsyncClient, sandbox: RunningSandbox, platform: str, user: str = USER
) -> tuple[dict[str, Any], dict[str, str]]:
    credentials = await create_sandbox_shop(sandbox, platform)
    response = await api.post(
        "/api/marketplace/connections",
        json=connection_body(user, platform, credentials),
        headers=auth_headers(user),
    )
    assert response.status_code == 201, response.text
    return response.json()["data"], credentials


async def connection_count(session_factory: async_sessionmaker[AsyncSession]) -> int:
    async with session_factory() as session:
        return int(await session.scalar(select(func.count(MarketplaceConnection.id))) or 0)


async def test_platforms_are_listed_with_form_fields(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/marketplace/platforms")
    assert response.status_code == 200
    platforms = {p["code"]: p for p in response.json()["data"]}
    assert set(platforms) == {"shopee", "lazada", "facebook", "tiktok"}
    shopee = platforms["shopee"]
    assert [f["name"] for f in shopee["requiredFields"]] == [
        "shopId",
        "apiKey",
        "apiSecret",
        "accessToken",
    ]
    assert {f["name"] for f in shopee["optionalFields"]} == {"refreshToken", "shopName"}
    assert all(f["label"] and f["hint"] for f in shopee["requiredFields"])
    assert shopee["isActive"] is True
    scopes = {s["name"] for s in platforms["facebook"]["scopes"]}
    assert {"commerce_account_read_orders", "catalog_management", "pages_read_engagement"} <= scopes
    assert "refreshToken" not in {f["name"] for f in platforms["facebook"]["optionalFields"]}


@pytest.mark.parametrize("platform", ["shopee", "lazada", "facebook"])
async def test_connect_checks_the_shop_and_masks_credentials(
    api: httpx.AsyncClient, sandbox: RunningSandbox, platform: str
) -> None:
    connection, credentials = await connect(api, sandbox, platform)
    assert connection["userId"] == USER
    assert connection["platformCode"] == platform
    assert connection["shopId"] == credentials["shopId"]
    assert connection["status"] == "active"
    assert connection["shopName"]  # filled from the platform when the body had none
    assert connection["lastSyncAt"] is None
    for field, value in connection["credentials"].items():
        if field.endswith("ExpiresAt") or value is None:
            continue
        assert value.startswith("****")
        assert len(value.removeprefix("****")) <= 4
    text_of_response = str(connection)
    for secret in ("apiSecret", "accessToken", "refreshToken"):
        if credentials.get(secret):
            assert credentials[secret] not in text_of_response


async def test_missing_required_fields_are_named_together(
    api: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    response = await api.post(
        "/api/marketplace/connections",
        json={
            "userId": USER,
            "platformCode": "shopee",
            "shopId": "123",
            "apiKey": "456",
            "apiSecret": "   ",
        },
        headers=auth_headers(USER),
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "missing_required_fields"
    assert error["message"] == "Missing required fields: apiSecret, accessToken"
    assert [f["field"] for f in error["fields"]] == ["apiSecret", "accessToken"]
    assert await connection_count(session_factory) == 0


async def test_missing_platform_code_and_user_are_reported(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/marketplace/connections", json={}, headers=auth_headers(USER))
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["error"]["fields"]] == ["userId", "platformCode"]


async def test_unknown_platform_names_the_field(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/marketplace/connections",
        json={"userId": USER, "platformCode": "tokopedia"},
        headers=auth_headers(USER),
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "unknown_platform"
    assert [f["field"] for f in error["fields"]] == ["platformCode"]
    assert "tokopedia" in error["message"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("shopId", "shop-abc"), ("apiKey", "not-a-partner-id")],
)
async def test_malformed_value_names_the_field(
    api: httpx.AsyncClient, field: str, value: str
) -> None:
    body = {
        "userId": USER,
        "platformCode": "shopee",
        "shopId": "1",
        "apiKey": "2",
        "apiSecret": "s",
        "accessToken": "t",
        field: value,
    }
    response = await api.post("/api/marketplace/connections", json=body, headers=auth_headers(USER))
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["error"]["fields"]] == [field]


async def test_wrong_json_type_names_the_field(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/marketplace/connections",
        json={"userId": USER, "platformCode": "shopee", "shopId": {"nested": 1}},
        headers=auth_headers(USER),
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [f["field"] for f in error["fields"]] == ["shopId"]


async def test_malformed_json_is_a_422_in_the_error_shape(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/marketplace/connections",
        content=b'{"userId": ',
        headers={**auth_headers(USER), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_json"


async def test_refresh_token_is_refused_for_facebook(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/marketplace/connections",
        json={
            "userId": USER,
            "platformCode": "facebook",
            "shopId": "1",
            "apiKey": "2",
            "apiSecret": "s",
            "accessToken": "t",
            "refreshToken": "r",
        },
        headers=auth_headers(USER),
    )
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["error"]["fields"]] == ["refreshToken"]


async def test_credentials_are_trimmed_before_use_and_storage(
    api: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    credentials = await create_sandbox_shop(sandbox, "lazada")
    body = connection_body(USER, "lazada", credentials)
    padded = {
        k: f"  {v}\t" if k not in ("userId", "platformCode", "startSync") else v
        for k, v in body.items()
    }
    response = await api.post(
        "/api/marketplace/connections", json=padded, headers=auth_headers(USER)
    )
    assert response.status_code == 201, response.text
    assert response.json()["data"]["shopId"] == credentials["shopId"]


async def test_same_shop_twice_is_a_conflict(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    first, credentials = await connect(api, sandbox, "shopee")
    response = await api.post(
        "/api/marketplace/connections",
        json=connection_body(USER, "shopee", credentials),
        headers=auth_headers(USER),
    )
    assert response.status_code == 409
    assert response.json()["error"]["connectionId"] == first["id"]
    assert await connection_count(session_factory) == 1


@pytest.mark.parametrize(
    ("platform", "field"),
    [
        ("shopee", "apiSecret"),
        ("lazada", "apiSecret"),
        ("facebook", "apiSecret"),
        ("shopee", "accessToken"),
        ("lazada", "accessToken"),
        ("facebook", "accessToken"),
    ],
)
async def test_wrong_credentials_are_refused_with_the_platform_reason(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    platform: str,
    field: str,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    credentials = await create_sandbox_shop(sandbox, platform)
    body = connection_body(USER, platform, credentials)
    body[field] = "not-what-the-platform-issued"
    body.pop("refreshToken", None)  # with a valid refresh token a dead access token is renewed
    response = await api.post("/api/marketplace/connections", json=body, headers=auth_headers(USER))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "marketplace_connection_failed"
    assert error["message"].startswith("Failed to connect marketplace: ")
    assert len(error["message"]) > len("Failed to connect marketplace: ")
    assert "not-what-the-platform" not in error["message"]
    assert await connection_count(session_factory) == 0


async def test_expired_access_token_is_renewed_at_connect_and_the_new_pair_stored(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    credentials = await create_sandbox_shop(sandbox, "shopee")
    body = connection_body(USER, "shopee", credentials)
    body["accessToken"] = "expired-or-unknown-token"
    response = await api.post("/api/marketplace/connections", json=body, headers=auth_headers(USER))
    assert response.status_code == 201, response.text
    cipher = CredentialCipher([ENCRYPTION_KEY])
    async with session_factory() as session:
        row = await session.scalar(select(MarketplaceConnection))
    assert row is not None
    # Shopee refresh tokens work once: the pair the check obtained is the one kept.
    assert cipher.decrypt(row.refresh_token_encrypted or "") != credentials["refreshToken"]
    assert cipher.decrypt(row.access_token_encrypted) != "expired-or-unknown-token"
    assert row.access_token_expires_at is not None


async def test_unreachable_platform_is_a_502_and_nothing_is_stored(
    database_url: str,
    redis_url: str,
    clean: None,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    closed = "http://127.0.0.1:9"  # discard port: nothing listens
    settings = make_settings(database_url, redis_url, SHOPEE_BASE_URL=closed)
    async with running_app(settings) as api:
        response = await api.post(
            "/api/marketplace/connections",
            json={
                "userId": USER,
                "platformCode": "shopee",
                "shopId": "1",
                "apiKey": "2",
                "apiSecret": "s",
                "accessToken": "t",
            },
            headers=auth_headers(USER),
        )
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "marketplace_unavailable"
    assert await connection_count(session_factory) == 0


async def test_users_see_only_their_own_connections(
    api: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    mine, _ = await connect(api, sandbox, "shopee", USER)
    theirs, _ = await connect(api, sandbox, "lazada", OTHER)
    response = await api.get(
        "/api/marketplace/connections", params={"userId": USER}, headers=auth_headers(USER)
    )
    assert response.status_code == 200
    assert [c["id"] for c in response.json()["data"]] == [mine["id"]]
    for method in ("GET", "PATCH", "DELETE"):
        response = await api.request(
            method,
            f"/api/marketplace/connections/{theirs['id']}",
            headers=auth_headers(USER),
            json={"shopName": "hijacked"} if method == "PATCH" else None,
        )
        assert response.status_code == 404, method
    response = await api.get(
        f"/api/marketplace/connections/{theirs['id']}", headers=auth_headers(OTHER)
    )
    assert response.json()["data"]["shopName"] != "hijacked"


async def test_patch_changes_name_schedule_and_active_flag(
    api: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    connection, _ = await connect(api, sandbox, "shopee")
    response = await api.patch(
        f"/api/marketplace/connections/{connection['id']}",
        json={"shopName": "  ร้านใหม่  ", "syncIntervalMinutes": 30, "isActive": False},
        headers=auth_headers(USER),
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["shopName"], data["syncIntervalMinutes"], data["isActive"]) == (
        "ร้านใหม่",
        30,
        False,
    )


async def test_patch_rejects_bad_values_with_the_field_named(
    api: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    connection, _ = await connect(api, sandbox, "shopee")
    url = f"/api/marketplace/connections/{connection['id']}"
    response = await api.patch(url, json={"syncIntervalMinutes": 1}, headers=auth_headers(USER))
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "syncIntervalMinutes"
    response = await api.patch(url, json={"colour": "red"}, headers=auth_headers(USER))
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "colour"


async def test_patch_with_wrong_credentials_keeps_the_old_ones(
    api: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    connection, _ = await connect(api, sandbox, "lazada")
    url = f"/api/marketplace/connections/{connection['id']}"
    response = await api.patch(
        url, json={"credentials": {"apiSecret": "wrong"}}, headers=auth_headers(USER)
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "marketplace_connection_failed"
    after = (await api.get(url, headers=auth_headers(USER))).json()["data"]
    assert after["credentials"]["apiSecret"] == connection["credentials"]["apiSecret"]


async def test_disconnect_erases_credentials_and_allows_reconnecting(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, credentials = await connect(api, sandbox, "facebook")
    url = f"/api/marketplace/connections/{connection['id']}"
    assert (await api.delete(url, headers=auth_headers(USER))).status_code == 204
    listed = await api.get("/api/marketplace/connections", headers=auth_headers(USER))
    assert listed.json()["data"] == []
    gone = (await api.get(url, headers=auth_headers(USER))).json()["data"]
    assert gone["status"] == "disconnected"
    assert gone["credentials"]["accessToken"] == "****"
    again = await api.post(
        "/api/marketplace/connections",
        json=connection_body(USER, "facebook", credentials),
        headers=auth_headers(USER),
    )
    assert again.status_code == 201
    assert again.json()["data"]["id"] == connection["id"]
    assert again.json()["data"]["status"] == "active"
    assert await connection_count(session_factory) == 1


async def test_no_plain_text_secret_is_stored(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    _, credentials = await connect(api, sandbox, "shopee")
    async with session_factory() as session:
        dump = (
            await session.execute(
                text("SELECT row_to_json(c)::text FROM marketplace_connections c")
            )
        ).scalar_one()
    for key in ("apiKey", "apiSecret", "accessToken", "refreshToken"):
        assert credentials[key] not in dump, key


async def test_unknown_connection_id_is_404_and_bad_id_is_422(api: httpx.AsyncClient) -> None:
    response = await api.get(
        f"/api/marketplace/connections/{uuid.uuid4()}", headers=auth_headers(USER)
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    response = await api.get("/api/marketplace/connections/nope", headers=auth_headers(USER))
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "connectionId"
