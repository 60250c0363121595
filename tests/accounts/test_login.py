from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import timedelta

import httpx
import jwt
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth import issue_token
from app.config import Settings
from app.models.refresh_token import RefreshToken
from app.models.user import User
from tests.accounts.conftest import PASSWORD, ClientAt, login, make_user
from tests.conftest import JWT_SECRET, make_settings, running_app
from tests.connections.test_auth import _rsa_pair

CONNECTIONS = "/api/marketplace/connections"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_login_gives_a_token_the_api_accepts_as_the_user(
    api: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    user_id = await make_user(session_factory, "ann@example.com")
    response = await login(api, "  Ann@Example.COM ", PASSWORD)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["userId"] == user_id
    assert data["expiresIn"] == 900
    claims = jwt.decode(data["accessToken"], JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == user_id
    assert claims["exp"] - claims["iat"] == 900
    listed = await api.get(
        CONNECTIONS, params={"userId": user_id}, headers=_bearer(data["accessToken"])
    )
    assert listed.status_code == 200, listed.text
    other = await api.get(
        CONNECTIONS, params={"userId": "someone"}, headers=_bearer(data["accessToken"])
    )
    assert other.status_code == 403
    async with session_factory() as session:
        stored = (await session.execute(select(RefreshToken))).scalar_one()
    # Only the refresh token's hash is kept.
    assert stored.token_hash == hashlib.sha256(data["refreshToken"].encode()).hexdigest()


async def test_the_access_token_lifetime_stays_within_the_max_token_ttl(
    settings: Settings, clean: None, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    user_id = await make_user(session_factory, "ann@example.com")
    capped = settings.model_copy(
        update={"auth_access_token_ttl_seconds": 7200, "auth_max_token_ttl_seconds": 3600}
    )
    async with running_app(capped) as api:
        data = (await login(api, "ann@example.com")).json()["data"]
        assert data["expiresIn"] == 3600
        claims = jwt.decode(data["accessToken"], JWT_SECRET, algorithms=["HS256"])
        assert claims["exp"] - claims["iat"] == 3600
        ok = await api.get(
            CONNECTIONS, params={"userId": user_id}, headers=_bearer(data["accessToken"])
        )
        assert ok.status_code == 200


async def test_wrong_password_and_unknown_email_get_the_same_401(
    api: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await make_user(session_factory, "ann@example.com")
    wrong = await login(api, "ann@example.com", "not the password")
    unknown = await login(api, "nobody@example.com", "not the password")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_credentials"
    assert wrong.json() == unknown.json()
    async with session_factory() as session:
        assert (await session.execute(select(RefreshToken))).first() is None


async def test_eleventh_attempt_on_one_account_is_429_even_with_the_password(
    client_at: ClientAt, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await make_user(session_factory, "ann@example.com")
    # Each failure from another address: only the account's count reaches the limit.
    for n in range(10):
        async with client_at(f"10.0.0.{n + 1}") as client:
            assert (await login(client, "ann@example.com", "guess")).status_code == 401
    async with client_at("10.0.1.1") as client:
        blocked = await login(client, "ANN@example.com")
    assert blocked.status_code == 429
    assert blocked.json()["error"]["code"] == "too_many_attempts"
    assert 1 <= int(blocked.headers["Retry-After"]) <= 900
    async with client_at("10.0.1.1") as client:
        await make_user(session_factory, "bob@example.com")
        assert (await login(client, "bob@example.com")).status_code == 200


async def test_eleventh_attempt_from_one_address_is_429_for_any_account(
    client_at: ClientAt, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await make_user(session_factory, "ann@example.com")
    async with client_at("192.0.2.7") as client:
        for n in range(10):
            assert (await login(client, f"guess{n}@example.com", "guess")).status_code == 401
        blocked = await login(client, "ann@example.com")
        assert blocked.status_code == 429
        assert 1 <= int(blocked.headers["Retry-After"]) <= 900
    async with client_at("192.0.2.8") as client:
        assert (await login(client, "ann@example.com")).status_code == 200


async def test_a_success_does_not_reset_the_address_count_but_resets_the_account(
    client_at: ClientAt, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await make_user(session_factory, "ann@example.com")
    async with client_at("192.0.2.9") as client:
        for n in range(9):
            assert (await login(client, "ann@example.com", f"guess{n}")).status_code == 401
        assert (await login(client, "ann@example.com")).status_code == 200
        # The account starts over; the address keeps its 9 failures: one more, then 429.
        assert (await login(client, "ann@example.com", "guess")).status_code == 401
        assert (await login(client, "ann@example.com")).status_code == 429
    async with client_at("192.0.2.10") as client:
        for n in range(8):
            assert (await login(client, "ann@example.com", f"guess{n}")).status_code == 401
        assert (await login(client, "ann@example.com")).status_code == 200


async def test_a_burst_of_parallel_guesses_gets_no_more_than_ten(
    api: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await make_user(session_factory, "ann@example.com")
    responses = await asyncio.gather(
        *(login(api, "ann@example.com", f"guess{n}") for n in range(16))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [401] * 10 + [429] * 6


async def test_refresh_rotates_and_a_reused_token_revokes_the_family(
    api: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await make_user(session_factory, "ann@example.com")
    first = (await login(api, "ann@example.com")).json()["data"]
    rotated = await api.post("/api/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["data"]
    assert second["refreshToken"] != first["refreshToken"]
    assert second["userId"] == first["userId"]
    ok = await api.get(
        CONNECTIONS, params={"userId": second["userId"]}, headers=_bearer(second["accessToken"])
    )
    assert ok.status_code == 200

    reused = await api.post("/api/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert reused.status_code == 401
    assert reused.json()["error"]["code"] == "invalid_refresh_token"
    # The thief's copy used up the family: the legitimate newer token is dead too.
    after = await api.post("/api/auth/refresh", json={"refreshToken": second["refreshToken"]})
    assert after.status_code == 401
    async with session_factory() as session:
        tokens = (await session.execute(select(RefreshToken))).scalars().all()
    assert len(tokens) == 2
    assert len({t.family_id for t in tokens}) == 1
    assert all(t.revoked_at is not None for t in tokens)


async def test_a_second_login_is_its_own_family(
    api: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await make_user(session_factory, "ann@example.com")
    laptop = (await login(api, "ann@example.com")).json()["data"]
    phone = (await login(api, "ann@example.com")).json()["data"]
    await api.post("/api/auth/refresh", json={"refreshToken": laptop["refreshToken"]})
    await api.post("/api/auth/refresh", json={"refreshToken": laptop["refreshToken"]})
    still = await api.post("/api/auth/refresh", json={"refreshToken": phone["refreshToken"]})
    assert still.status_code == 200


async def test_logout_revokes_the_refresh_token(
    api: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await make_user(session_factory, "ann@example.com")
    pair = (await login(api, "ann@example.com")).json()["data"]
    out = await api.post("/api/auth/logout", json={"refreshToken": pair["refreshToken"]})
    assert out.status_code == 204
    again = await api.post("/api/auth/refresh", json={"refreshToken": pair["refreshToken"]})
    assert again.status_code == 401
    unknown = await api.post("/api/auth/logout", json={"refreshToken": "never-issued"})
    assert unknown.status_code == 204


async def test_refresh_with_an_unknown_token_is_401(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/auth/refresh", json={"refreshToken": "never-issued"})
    assert response.status_code == 401
    missing = await api.post("/api/auth/refresh", json={})
    assert missing.status_code == 422
    assert missing.json()["error"]["fields"][0]["field"] == "refreshToken"


async def test_login_rehashes_a_password_hashed_with_older_parameters(
    api: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    user_id = await make_user(session_factory, "ann@example.com")
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    async with session_factory() as session:
        user = await session.get(User, uuid.UUID(user_id))
        assert user is not None
        user.password_hash = weak
        await session.commit()
    assert (await login(api, "ann@example.com")).status_code == 200
    async with session_factory() as session:
        user = await session.get(User, uuid.UUID(user_id))
        assert user is not None
        assert user.password_hash != weak
        assert not PasswordHasher().check_needs_rehash(user.password_hash)
    assert (await login(api, "ann@example.com")).status_code == 200


async def test_under_rs256_only_login_is_503_and_provider_tokens_work(
    database_url: str, redis_url: str, clean: None
) -> None:
    private, public = _rsa_pair()
    settings = make_settings(
        database_url, redis_url, AUTH_JWT_SECRET=None, AUTH_JWT_PUBLIC_KEY=public
    )
    async with running_app(settings) as api:
        response = await login(api, "ann@example.com")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "login_unavailable"
        token = issue_token("u1", ttl=timedelta(minutes=5), private_key=private)
        ok = await api.get(CONNECTIONS, headers=_bearer(token))
        assert ok.status_code == 200


async def test_with_both_keys_login_and_provider_tokens_both_work(
    database_url: str,
    redis_url: str,
    clean: None,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    private, public = _rsa_pair()
    settings = make_settings(database_url, redis_url, AUTH_JWT_PUBLIC_KEY=public)
    user_id = await make_user(session_factory, "ann@example.com")
    async with running_app(settings) as api:
        pair = (await login(api, "ann@example.com")).json()["data"]
        mine = await api.get(CONNECTIONS, headers=_bearer(pair["accessToken"]))
        assert mine.status_code == 200
        provider = issue_token("u1", ttl=timedelta(minutes=5), private_key=private)
        assert (await api.get(CONNECTIONS, headers=_bearer(provider))).status_code == 200
        # An HS256 token not issued by login stays refused when RS256 is configured.
        plain = issue_token(user_id, ttl=timedelta(minutes=5), secret=JWT_SECRET)
        assert (await api.get(CONNECTIONS, headers=_bearer(plain))).status_code == 401


async def test_an_unknown_email_is_checked_against_a_hash_like_a_real_one(
    api: httpx.AsyncClient,
    session_factory: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.accounts import service

    checked: list[str] = []
    real = service._password_matches

    def recording(password_hash: str, password: str) -> bool:
        checked.append(password_hash)
        return real(password_hash, password)

    monkeypatch.setattr(service, "_password_matches", recording)
    await make_user(session_factory, "ann@example.com")
    await login(api, "ann@example.com", "wrong password")
    await login(api, "nobody@example.com", "wrong password")
    known, unknown = checked
    # The same argon2 variant and parameters: the same work, so about the same time.
    assert known.rsplit("$", 2)[0] == unknown.rsplit("$", 2)[0]
    assert known != unknown


async def test_login_is_503_when_redis_is_down(
    settings: Settings, clean: None, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await make_user(session_factory, "ann@example.com")
    down = settings.model_copy(update={"redis_url": "redis://127.0.0.1:9"})
    async with running_app(down) as api:
        response = await login(api, "ann@example.com")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"


async def test_two_refreshes_racing_with_one_token_get_one_pair_at_most(
    api: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await make_user(session_factory, "ann@example.com")
    token = (await login(api, "ann@example.com")).json()["data"]["refreshToken"]
    responses = await asyncio.gather(
        *(api.post("/api/auth/refresh", json={"refreshToken": token}) for _ in range(4))
    )
    assert sorted(r.status_code for r in responses) == [200, 401, 401, 401]
    async with session_factory() as session:
        tokens = (await session.execute(select(RefreshToken))).scalars().all()
    # One rotation happened; the replays then revoked the whole family, the new token too.
    assert len(tokens) == 2
    assert all(t.revoked_at is not None for t in tokens)
