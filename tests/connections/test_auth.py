from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.auth import issue_token
from app.config import Settings
from tests.conftest import JWT_SECRET, auth_headers, make_settings, running_app

LIST = "/api/marketplace/connections"


async def test_missing_token_is_401_with_www_authenticate(api: httpx.AsyncClient) -> None:
    response = await api.get(LIST, params={"userId": "u1"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    "header",
    [
        "Bearer not-a-jwt",
        "Basic dXNlcjpwYXNz",
        "Bearer "
        + jwt.encode(
            {"sub": "u1", "exp": 4102444800},
            "another-secret-that-is-long-enough-for-hs256",
            algorithm="HS256",
        ),
        "Bearer " + jwt.encode({"exp": 4102444800}, JWT_SECRET, algorithm="HS256"),
        "Bearer " + jwt.encode({"sub": "u1"}, JWT_SECRET, algorithm="HS256"),
    ],
    ids=["garbage", "basic", "wrong-secret", "no-sub", "no-exp"],
)
async def test_bad_tokens_are_401(api: httpx.AsyncClient, header: str) -> None:
    response = await api.get(LIST, headers={"Authorization": header})
    assert response.status_code == 401
    assert "WWW-Authenticate" in response.headers


async def test_expired_token_is_401(api: httpx.AsyncClient) -> None:
    token = issue_token("u1", ttl=timedelta(minutes=-5), secret=JWT_SECRET)
    response = await api.get(LIST, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


async def test_a_token_expiring_beyond_the_max_lifetime_is_401(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    assert settings.auth_max_token_ttl_seconds == 86400
    for ttl, status in ((timedelta(hours=23), 200), (timedelta(days=2), 401)):
        token = issue_token("u1", ttl=ttl, secret=JWT_SECRET)
        response = await api.get(LIST, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == status, response.text
    assert "AUTH_MAX_TOKEN_TTL_SECONDS" in response.json()["error"]["message"]
    far = jwt.encode({"sub": "u1", "exp": 4102444800}, JWT_SECRET, algorithm="HS256")
    response = await api.get(LIST, headers={"Authorization": f"Bearer {far}"})
    assert response.status_code == 401


async def test_the_max_lifetime_is_a_setting(settings: Settings) -> None:
    short = settings.model_copy(update={"auth_max_token_ttl_seconds": 3600})
    async with running_app(short) as api:
        for ttl, status in ((timedelta(minutes=50), 200), (timedelta(hours=2), 401)):
            token = issue_token("u1", ttl=ttl, secret=JWT_SECRET)
            response = await api.get(LIST, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == status, response.text


async def test_token_of_another_user_is_403(api: httpx.AsyncClient) -> None:
    response = await api.get(LIST, params={"userId": "victim"}, headers=auth_headers("attacker"))
    assert response.status_code == 403
    response = await api.post(
        LIST,
        json={"userId": "victim", "platformCode": "shopee"},
        headers=auth_headers("attacker"),
    )
    assert response.status_code == 403


async def test_platforms_need_no_token(api: httpx.AsyncClient) -> None:
    assert (await api.get("/api/marketplace/platforms")).status_code == 200


def _rsa_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


async def test_rs256_tokens_with_audience_and_issuer(
    database_url: str, redis_url: str, clean: None
) -> None:
    private, public = _rsa_pair()
    settings: Settings = make_settings(
        database_url,
        redis_url,
        AUTH_JWT_PUBLIC_KEY=public,
        AUTH_JWT_AUDIENCE="omni-sales",
        AUTH_JWT_ISSUER="https://id.example.com",
    )
    good = issue_token(
        "u1",
        ttl=timedelta(minutes=5),
        private_key=private,
        audience="omni-sales",
        issuer="https://id.example.com",
    )
    wrong_audience = issue_token(
        "u1",
        ttl=timedelta(minutes=5),
        private_key=private,
        audience="someone-else",
        issuer="https://id.example.com",
    )
    hs256 = issue_token(
        "u1",
        ttl=timedelta(minutes=5),
        secret=JWT_SECRET,
        audience="omni-sales",
        issuer="https://id.example.com",
    )
    async with running_app(settings) as api:
        ok = await api.get(LIST, headers={"Authorization": f"Bearer {good}"})
        assert ok.status_code == 200, ok.text
        for token in (wrong_audience, hs256):
            response = await api.get(LIST, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401


def test_a_cached_token_stops_working_when_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import SecretStr

    from app.auth import LEEWAY_SECONDS, TokenVerifier
    from app.errors import UnauthorizedError

    verifier = TokenVerifier(Settings(AUTH_JWT_SECRET=SecretStr(JWT_SECRET)))
    token = issue_token("u1", ttl=timedelta(minutes=5), secret=JWT_SECRET)
    assert verifier.subject(token) == "u1"
    assert verifier.subject(token) == "u1"  # served from the cache
    later = time.time() + 5 * 60 + LEEWAY_SECONDS + 1
    monkeypatch.setattr("app.auth.time.time", lambda: later)
    monkeypatch.setattr("jwt.api_jwt.datetime", _FrozenDatetime(later))
    with pytest.raises(UnauthorizedError):
        verifier.subject(token)


class _FrozenDatetime:
    """Stands in for `datetime` in PyJWT so its expiry check sees the same clock."""

    def __init__(self, timestamp: float) -> None:
        self.timestamp = timestamp

    def now(self, tz: object = None) -> datetime:
        return datetime.fromtimestamp(self.timestamp, UTC)

    def __getattr__(self, name: str) -> object:
        return getattr(datetime, name)
