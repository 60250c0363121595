from __future__ import annotations

import hashlib
import uuid

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models.api_key import ApiKey
from tests.conftest import RunningSandbox, auth_headers, connection_body, create_sandbox_shop

KEYS = "/api/marketplace/api-keys"
ORDERS = "/api/marketplace/orders"


def _key(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _create(
    api: httpx.AsyncClient, user_id: str, scopes: list[str], name: str = "ERP sync"
) -> dict[str, str]:
    response = await api.post(
        KEYS,
        json={"userId": user_id, "name": name, "scopes": scopes},
        headers=auth_headers(user_id),
    )
    assert response.status_code == 201, response.text
    data: dict[str, str] = response.json()["data"]
    return data


async def test_a_key_is_shown_once_and_stored_hashed(
    api: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    data = await _create(api, "u1", ["orders:read", "orders:write"])
    key = data["key"]
    assert key.startswith("omni_") and len(key) >= 5 + 43
    assert data["last4"] == key[-4:]
    assert sorted(data["scopes"]) == ["orders:read", "orders:write"]
    assert data["name"] == "ERP sync"
    assert data["createdAt"]
    async with session_factory() as session:
        row = (await session.execute(select(ApiKey))).scalar_one()
        assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
        dump = (await session.execute(text("SELECT api_keys::text FROM api_keys"))).scalar_one()
    assert key not in dump and key[5:] not in dump

    listed = await api.get(KEYS, params={"userId": "u1"}, headers=auth_headers("u1"))
    assert listed.status_code == 200
    [item] = listed.json()["data"]
    assert item["id"] == data["id"]
    assert item["last4"] == key[-4:]
    assert item["name"] == "ERP sync"
    assert "key" not in item
    assert item["lastUsedAt"] is None


async def test_a_key_authenticates_as_its_user_and_records_its_use(
    api: httpx.AsyncClient,
) -> None:
    key = (await _create(api, "u1", ["orders:read"]))["key"]
    response = await api.get(ORDERS, params={"userId": "u1"}, headers=_key(key))
    assert response.status_code == 200, response.text
    # Without userId the key's user is the one acting.
    assert (await api.get(ORDERS, headers=_key(key))).status_code == 200
    listed = (await api.get(KEYS, headers=auth_headers("u1"))).json()["data"]
    assert listed[0]["lastUsedAt"] is not None
    other = await api.get(ORDERS, params={"userId": "u2"}, headers=_key(key))
    assert other.status_code == 403


async def test_a_key_outside_its_scope_is_403_naming_the_scope(api: httpx.AsyncClient) -> None:
    key = (await _create(api, "u1", ["orders:read"]))["key"]
    response = await api.put(
        "/api/marketplace/inventory/SKU-1",
        json={"userId": "u1", "available": 5},
        headers=_key(key),
    )
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "insufficient_scope"
    assert error["scope"] == "inventory:write"
    assert "inventory:write" in error["message"]
    assert 'scope="inventory:write"' in response.headers["WWW-Authenticate"]
    sync = await api.post(
        "/api/marketplace/sync-orders",
        json={"userId": "u1", "connectionId": str(uuid.uuid4())},
        headers=_key(key),
    )
    assert sync.status_code == 403
    assert sync.json()["error"]["scope"] == "connections:manage"


async def test_a_key_with_the_scope_passes_the_scope_check(api: httpx.AsyncClient) -> None:
    key = (await _create(api, "u1", ["inventory:write"]))["key"]
    response = await api.put(
        "/api/marketplace/inventory/SKU-1",
        json={"userId": "u1", "available": 5},
        headers=_key(key),
    )
    assert response.status_code not in (401, 403), response.text
    read = await api.get(ORDERS, headers=_key(key))
    assert read.status_code == 403
    assert read.json()["error"]["scope"] == "orders:read"


async def test_a_key_cannot_manage_keys(api: httpx.AsyncClient) -> None:
    key = (await _create(api, "u1", ["orders:read", "orders:write", "connections:manage"]))["key"]
    for response in (
        await api.post(
            KEYS,
            json={"userId": "u1", "name": "more", "scopes": ["orders:read"]},
            headers=_key(key),
        ),
        await api.get(KEYS, headers=_key(key)),
    ):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "api_key_not_allowed"


async def test_a_revoked_key_is_401(
    api: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    data = await _create(api, "u1", ["orders:read"])
    assert (await api.get(ORDERS, headers=_key(data["key"]))).status_code == 200
    revoked = await api.delete(f"{KEYS}/{data['id']}", headers=auth_headers("u1"))
    assert revoked.status_code == 204
    response = await api.get(ORDERS, headers=_key(data["key"]))
    assert response.status_code == 401
    assert "WWW-Authenticate" in response.headers
    assert (await api.get(KEYS, headers=auth_headers("u1"))).json()["data"] == []
    again = await api.delete(f"{KEYS}/{data['id']}", headers=auth_headers("u1"))
    assert again.status_code == 404
    async with session_factory() as session:
        row = (await session.execute(select(ApiKey))).scalar_one()
    assert row.revoked_at is not None


async def test_an_unknown_key_is_401(api: httpx.AsyncClient) -> None:
    response = await api.get(ORDERS, headers=_key("omni_" + "x" * 43))
    assert response.status_code == 401


async def test_another_users_keys_are_404_and_unlisted(api: httpx.AsyncClient) -> None:
    data = await _create(api, "u1", ["orders:read"])
    deleted = await api.delete(f"{KEYS}/{data['id']}", headers=auth_headers("u2"))
    assert deleted.status_code == 404
    assert (await api.get(KEYS, headers=auth_headers("u2"))).json()["data"] == []
    named = await api.delete(
        f"{KEYS}/{data['id']}", params={"userId": "u1"}, headers=auth_headers("u2")
    )
    assert named.status_code == 403
    for_other = await api.post(
        KEYS,
        json={"userId": "u1", "name": "x", "scopes": ["orders:read"]},
        headers=auth_headers("u2"),
    )
    assert for_other.status_code == 403
    # The key of u1 still works: u2's attempts changed nothing.
    assert (await api.get(ORDERS, headers=_key(data["key"]))).status_code == 200


async def test_a_key_sees_no_resource_of_another_user(
    api: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    credentials = await create_sandbox_shop(sandbox, "shopee")
    created = await api.post(
        "/api/marketplace/connections",
        json=connection_body("u2", "shopee", credentials),
        headers=auth_headers("u2"),
    )
    assert created.status_code == 201, created.text
    connection_id = created.json()["data"]["id"]
    key = (await _create(api, "u1", ["orders:read", "connections:manage"]))["key"]
    path = f"/api/marketplace/connections/{connection_id}"
    assert (await api.get(path, headers=_key(key))).status_code == 404
    assert (await api.delete(path, headers=_key(key))).status_code == 404
    listed = await api.get("/api/marketplace/connections", headers=_key(key))
    assert listed.json()["data"] == []
    # The owner's own key does see it.
    own = (await _create(api, "u2", ["orders:read"]))["key"]
    assert (await api.get(path, headers=_key(own))).status_code == 200


async def test_bad_scopes_and_names_are_422_naming_the_field(api: httpx.AsyncClient) -> None:
    for body, field in (
        ({"userId": "u1", "name": "x", "scopes": ["orders:delete"]}, "scopes"),
        ({"userId": "u1", "name": "x", "scopes": []}, "scopes"),
        ({"userId": "u1", "name": "  ", "scopes": ["orders:read"]}, "name"),
    ):
        response = await api.post(KEYS, json=body, headers=auth_headers("u1"))
        assert response.status_code == 422, body
        fields = [f["field"] for f in response.json()["error"]["fields"]]
        assert any(f.startswith(field) for f in fields), fields
