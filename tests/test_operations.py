from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import jwt
import pytest

from app.cli import main as cli_main
from app.logging import JsonFormatter, request_id_var
from app.openapi import openapi_document, openapi_yaml
from tests.conftest import JWT_SECRET, make_settings, running_app

ROOT = Path(__file__).resolve().parent.parent


async def test_health_and_ready(api: httpx.AsyncClient) -> None:
    assert (await api.get("/health")).json() == {"status": "ok"}
    ready = await api.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}


async def test_ready_is_503_when_redis_is_down(database_url: str, clean: None) -> None:
    settings = make_settings(database_url, "redis://127.0.0.1:9/0")
    async with running_app(settings) as api:
        response = await api.get("/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "ok"
    assert response.json()["checks"]["redis"].startswith("unavailable")


async def test_unknown_route_uses_the_error_shape(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/marketplace/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_request_id_is_echoed_or_made(api: httpx.AsyncClient) -> None:
    echoed = await api.get("/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["X-Request-ID"] == "abc-123"
    made = await api.get("/health")
    assert len(made.headers["X-Request-ID"]) == 32


def test_log_lines_are_json_with_the_request_id() -> None:
    record = logging.LogRecord("app.test", logging.INFO, __file__, 1, "hello %s", ("x",), None)
    record.platform = "shopee"
    token = request_id_var.set("req-42")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert line["message"] == "hello x"
    assert line["requestId"] == "req-42"
    assert line["platform"] == "shopee"


def test_committed_openapi_matches_the_app() -> None:
    committed = (ROOT / "openapi.yaml").read_text()
    assert committed == openapi_yaml(), (
        "openapi.yaml is stale: run `omni-sales openapi -o openapi.yaml`"
    )


def test_token_command_prints_a_token_for_the_user(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.config import get_settings

    monkeypatch.setenv("AUTH_JWT_SECRET", JWT_SECRET)
    monkeypatch.delenv("AUTH_JWT_PUBLIC_KEY", raising=False)
    get_settings.cache_clear()
    try:
        cli_main(["token", "--user", "seller-9", "--ttl", "2h"])
    finally:
        get_settings.cache_clear()
    token = capsys.readouterr().out.strip()
    claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "seller-9"
    assert claims["exp"] - claims["iat"] == 7200


def test_token_command_refuses_a_ttl_beyond_the_max_lifetime(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.config import get_settings

    monkeypatch.setenv("AUTH_JWT_SECRET", JWT_SECRET)
    monkeypatch.delenv("AUTH_JWT_PUBLIC_KEY", raising=False)
    monkeypatch.delenv("AUTH_MAX_TOKEN_TTL_SECONDS", raising=False)
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as exit_info:
            cli_main(["token", "--user", "seller-9", "--ttl", "2d"])
        assert exit_info.value.code == 2
        refused = capsys.readouterr()
        assert refused.out == ""
        assert "AUTH_MAX_TOKEN_TTL_SECONDS" in refused.err
        monkeypatch.setenv("AUTH_MAX_TOKEN_TTL_SECONDS", str(3 * 86400))
        get_settings.cache_clear()
        cli_main(["token", "--user", "seller-9", "--ttl", "2d"])
    finally:
        get_settings.cache_clear()
    claims = jwt.decode(capsys.readouterr().out.strip(), JWT_SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 2 * 86400


def test_serve_refuses_half_configured_urls(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.config import get_settings

    monkeypatch.setenv("DATABASE_URL", "postgresql://root@127.0.0.1/test")
    monkeypatch.delenv("REDIS_URL", raising=False)
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as exit_info:
            cli_main(["serve"])
    finally:
        get_settings.cache_clear()
    assert exit_info.value.code == 2
    assert "REDIS_URL" in capsys.readouterr().err


def test_routes_document_only_the_statuses_they_answer() -> None:
    paths = openapi_document()["paths"]

    def statuses(path: str, method: str = "get") -> set[str]:
        return set(paths[path][method]["responses"])

    assert statuses("/health") == {"200"}
    assert statuses("/ready") == {"200", "503"}
    assert statuses("/api/marketplace/orders") == {"200", "401", "403", "422", "503"}
    assert statuses("/api/marketplace/orders/{orderId}") == {
        "200",
        "401",
        "403",
        "404",
        "422",
        "503",
    }
