"""The HTTP edge: bodies over the limit, text PostgreSQL cannot store, unbounded integers and
malformed JSON all answer a 4xx in the one error shape, and every response carries its id."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import Integer, bindparam, func, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.crypto import CredentialCipher
from app.db import Database
from app.logging import JsonFormatter
from app.models import MarketplaceConnection
from tests.conftest import (
    ENCRYPTION_KEY,
    JWT_SECRET,
    RunningSandbox,
    auth_headers,
    connection_body,
    create_sandbox_shop,
    make_settings,
    running_app,
)

USER = "edge-seller"
CONNECTIONS = "/api/marketplace/connections"
ONE_MEGABYTE = 1024 * 1024
BIGINT_OVERFLOW = str(2**63)


def assert_error_shape(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["X-Request-ID"]
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    return error


def fields_of(error: dict[str, Any]) -> set[str]:
    return {problem["field"] for problem in error["fields"]}


async def connection_count(session_factory: async_sessionmaker[AsyncSession]) -> int:
    async with session_factory() as session:
        return int(await session.scalar(select(func.count(MarketplaceConnection.id))) or 0)


# --- body limit --------------------------------------------------------------------------


async def test_body_over_the_limit_is_413_before_auth(api: httpx.AsyncClient) -> None:
    too_big = b"{" + b" " * ONE_MEGABYTE + b"}"
    response = await api.post(
        CONNECTIONS, content=too_big, headers={"Content-Type": "application/json"}
    )
    error = assert_error_shape(response, 413, "payload_too_large")
    assert error["maxBytes"] == ONE_MEGABYTE
    # The same request under the limit reaches auth.
    small = await api.post(CONNECTIONS, json={}, headers={"Content-Type": "application/json"})
    assert small.status_code == 401


async def test_streamed_body_is_cut_off_at_the_limit(api: httpx.AsyncClient) -> None:
    """Without Content-Length the bytes are counted as they arrive: reading stops at the limit
    instead of buffering all 50 MB."""
    chunks_sent = 0

    async def fifty_megabytes() -> AsyncIterator[bytes]:
        nonlocal chunks_sent
        for _ in range(50):
            chunks_sent += 1
            yield b" " * ONE_MEGABYTE

    response = await api.post(
        CONNECTIONS, content=fifty_megabytes(), headers={"Content-Type": "application/json"}
    )
    assert_error_shape(response, 413, "payload_too_large")
    assert chunks_sent <= 2


async def test_the_limit_is_the_max_body_bytes_setting(
    database_url: str, redis_url: str, clean: None
) -> None:
    settings = make_settings(database_url, redis_url, MAX_BODY_BYTES=64)
    async with running_app(settings) as api:
        response = await api.post(CONNECTIONS, json={"shopName": "x" * 64})
    error = assert_error_shape(response, 413, "payload_too_large")
    assert error["maxBytes"] == 64


async def test_body_at_the_limit_is_parsed(api: httpx.AsyncClient) -> None:
    body = b'{"userId": "' + b"x" * (ONE_MEGABYTE - 20) + b'"}'
    assert len(body) <= ONE_MEGABYTE
    response = await api.post(
        CONNECTIONS,
        content=body,
        headers={"Content-Type": "application/json", **auth_headers(USER)},
    )
    error = assert_error_shape(response, 422, "validation_error")
    assert "userId" in fields_of(error)


# --- malformed JSON ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"userId": "\xff\xfe"}',
        b'{"syncIntervalMinutes": 1' + b"0" * 5000 + b"}",
        b'{"userId": ',
    ],
    ids=["deep-nesting", "invalid-utf8", "5000-digit-integer", "truncated"],
)
async def test_malformed_json_is_422_invalid_json(api: httpx.AsyncClient, body: bytes) -> None:
    response = await api.post(
        CONNECTIONS,
        content=body,
        headers={"Content-Type": "application/json", **auth_headers(USER)},
    )
    assert_error_shape(response, 422, "invalid_json")


# --- text PostgreSQL cannot hold -----------------------------------------------------------


async def test_nul_in_shop_name_is_422_on_create_and_nothing_is_stored(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    credentials = await create_sandbox_shop(sandbox, "shopee")
    body = connection_body(USER, "shopee", credentials) | {"shopName": "My\x00Shop"}
    response = await api.post(CONNECTIONS, json=body, headers=auth_headers(USER))
    error = assert_error_shape(response, 422, "validation_error")
    assert fields_of(error) == {"shopName"}
    assert await connection_count(session_factory) == 0


async def test_nul_in_shop_name_is_422_on_patch_and_the_name_is_kept(
    api: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    credentials = await create_sandbox_shop(sandbox, "lazada")
    created = await api.post(
        CONNECTIONS,
        json=connection_body(USER, "lazada", credentials) | {"shopName": "Before"},
        headers=auth_headers(USER),
    )
    assert created.status_code == 201, created.text
    url = f"{CONNECTIONS}/{created.json()['data']['id']}"
    response = await api.patch(url, json={"shopName": "After\x00"}, headers=auth_headers(USER))
    error = assert_error_shape(response, 422, "validation_error")
    assert fields_of(error) == {"shopName"}
    stored = await api.get(url, headers=auth_headers(USER))
    assert stored.json()["data"]["shopName"] == "Before"


async def test_lone_surrogate_in_a_body_string_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post(
        CONNECTIONS,
        content=b'{"platformCode": "shopee", "shopName": "bad \\ud800 text"}',
        headers={"Content-Type": "application/json", **auth_headers(USER)},
    )
    error = assert_error_shape(response, 422, "validation_error")
    assert "shopName" in fields_of(error)


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/api/marketplace/orders", "q=abc%00def"),
        ("/api/marketplace/orders", "userId=edge%00seller"),
        ("/api/marketplace/sync-logs", "userId=%00"),
        ("/api/marketplace/connections", "userId=x%00"),
    ],
)
async def test_nul_in_any_query_parameter_is_422_naming_it(
    api: httpx.AsyncClient, path: str, query: str
) -> None:
    response = await api.get(f"{path}?{query}", headers=auth_headers(USER))
    error = assert_error_shape(response, 422, "validation_error")
    assert fields_of(error) == {query.split("=", 1)[0]}


def _token_with_subject(subject: str) -> str:
    now = datetime.now(UTC)
    return jwt.encode(
        {"sub": subject, "iat": now, "exp": now + timedelta(minutes=5)},
        JWT_SECRET,
        algorithm="HS256",
    )


@pytest.mark.parametrize(
    "subject", ["seller\x00one", "seller\ud800", "x" * 129], ids=["nul", "surrogate", "too-long"]
)
async def test_signed_token_with_unstorable_subject_is_401(
    api: httpx.AsyncClient, subject: str
) -> None:
    headers = {"Authorization": f"Bearer {_token_with_subject(subject)}"}
    for path in (CONNECTIONS, "/api/marketplace/orders"):
        response = await api.get(path, headers=headers)
        assert_error_shape(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


# --- integers that would overflow bigint ---------------------------------------------------


@pytest.mark.parametrize("path", ["/api/marketplace/orders", "/api/marketplace/sync-logs"])
@pytest.mark.parametrize("name", ["offset", "limit"])
async def test_integer_query_beyond_bigint_is_422(
    api: httpx.AsyncClient, path: str, name: str
) -> None:
    response = await api.get(path, params={name: BIGINT_OVERFLOW}, headers=auth_headers(USER))
    error = assert_error_shape(response, 422, "validation_error")
    assert fields_of(error) == {name}


# --- 500s ----------------------------------------------------------------------------------


class _JsonLines(logging.Handler):
    """Formats at emit time, as the real handler does, so context variables are seen."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


async def test_unexpected_error_is_500_in_the_shape_with_the_request_id(
    api: httpx.AsyncClient,
) -> None:
    app: Any = api.app  # type: ignore[attr-defined]

    async def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/_test/broken", broken)
    handler = _JsonLines()
    logging.getLogger("app.errors").addHandler(handler)
    try:
        response = await api.get("/_test/broken", headers={"X-Request-ID": "req-500"})
    finally:
        logging.getLogger("app.errors").removeHandler(handler)
    assert_error_shape(response, 500, "internal_error")
    assert response.headers["X-Request-ID"] == "req-500"
    assert "a bug" not in response.text
    assert [line["requestId"] for line in handler.lines] == ["req-500"]
    assert "RuntimeError: a bug" in handler.lines[0]["exception"]


# --- statement parameters never reach an error message ---------------------------------------


async def test_a_failed_insert_does_not_render_its_parameters(settings: Settings) -> None:
    cipher = CredentialCipher([ENCRYPTION_KEY])
    secrets = {
        "api_key_encrypted": cipher.encrypt("key-material"),
        "api_secret_encrypted": cipher.encrypt("secret-material"),
        "access_token_encrypted": cipher.encrypt("access-material"),
        "refresh_token_encrypted": cipher.encrypt("refresh-material"),
    }
    database = Database(settings)
    try:
        async with database.session() as session:
            with pytest.raises(DBAPIError) as failure:
                await session.execute(
                    insert(MarketplaceConnection).values(
                        id=uuid.uuid4(),
                        user_id=USER,
                        platform_code="no-such-platform",  # violates the foreign key
                        shop_id="1",
                        **secrets,
                    )
                )
    finally:
        await database.dispose()
    rendered = str(failure.value)
    assert "hidden" in rendered
    for ciphertext in secrets.values():
        assert ciphertext not in rendered


async def test_driver_argument_values_are_hidden_in_log_lines(settings: Settings) -> None:
    """asyncpg puts the value it could not encode into its own message, which the engine's
    hide_parameters does not reach; the log formatter hides it."""
    ciphertext = CredentialCipher([ENCRYPTION_KEY]).encrypt("secret-material")
    database = Database(settings)
    try:
        async with database.session() as session:
            with pytest.raises(DBAPIError) as failure:
                await session.execute(
                    text("SELECT :value").bindparams(bindparam("value", type_=Integer)),
                    {"value": ciphertext},
                )
    finally:
        await database.dispose()
    assert ciphertext[:20] in str(failure.value)  # the driver's message does carry it
    record = logging.LogRecord(
        "app.errors",
        logging.ERROR,
        __file__,
        1,
        "unhandled error: %s",
        (failure.value,),
        (type(failure.value), failure.value, failure.value.__traceback__),
    )
    line = JsonFormatter().format(record)
    assert ciphertext[:20] not in line
    assert "[value hidden]" in line


# --- security headers and redacted logs ----------------------------------------------------

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "content-security-policy": "frame-ancestors 'none'",
}


async def test_every_response_carries_the_security_headers(api: httpx.AsyncClient) -> None:
    responses = [
        await api.get("/health"),
        await api.get("/api/marketplace/platforms"),
        await api.get(CONNECTIONS),  # 401
        await api.get("/no/such/path"),  # 404
        await api.get("/metrics"),
        await api.get("/docs"),
        await api.get("/redoc"),
        await api.get("/openapi.json"),
        await api.post("/api/webhooks/marketplace", content=b"{"),  # the push intake
    ]
    assert [r.status_code for r in responses][:5] == [200, 200, 401, 404, 200]
    for response in responses:
        for name, expected in SECURITY_HEADERS.items():
            assert response.headers.get(name) == expected, (response.request.url, name)
    # The docs pages still load their scripts and styles (the policy only forbids framing).
    docs = responses[5]
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    assert responses[6].status_code == 200


def _access_line(capsys: pytest.CaptureFixture[str], path: str) -> str:
    from app.logging import configure_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("INFO")
        capsys.readouterr()
        # What uvicorn's protocol classes log for each request, through its own logger.
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", path, "1.1", 302
        )
        logging.getLogger("app.authorize").warning("callback failed for %s", path)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    return capsys.readouterr().err


def test_oauth_codes_states_and_grants_are_redacted_in_every_log_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = (
        "/api/marketplace/connect/shopee/callback?code=SECRETCODE42&shop_id=880001"
        "&state=STATE.VALUE.SIG&main_account_id=7&grant=GRANT-XYZ&country_code=TH"
    )
    lines = _access_line(capsys, path).strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        message = json.loads(line)["message"]
        for secret in ("SECRETCODE42", "STATE.VALUE.SIG", "GRANT-XYZ"):
            assert secret not in line
        assert "code=[redacted]" in message and "state=[redacted]" in message
        assert "grant=[redacted]" in message
        assert "shop_id=880001" in message and "country_code=TH" in message
