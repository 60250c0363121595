"""Generated requests against the app's own OpenAPI: no input may produce a 5xx.

The app runs under uvicorn in a thread (schemathesis calls it synchronously over HTTP), with
the marketplaces pointed at a closed port, so the only 5xx the API may answer is the 502 that
says a marketplace is unreachable."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings

from app.main import create_app
from app.openapi import openapi_document
from tests.conftest import auth_headers, free_port, make_settings

schema = schemathesis.openapi.from_dict(openapi_document())
CLOSED = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def base_url(database_url: str, redis_url: str) -> Iterator[str]:
    app_settings = make_settings(
        database_url,
        redis_url,
        SHOPEE_BASE_URL=CLOSED,
        LAZADA_BASE_URL=CLOSED,
        LAZADA_AUTH_URL=CLOSED,
        FACEBOOK_GRAPH_URL=CLOSED,
        SYNC_WAIT_SECONDS=0,
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(app_settings), host="127.0.0.1", port=port, log_config=None)
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_generated_input_causes_a_server_error(case: Any, base_url: str) -> None:
    response = case.call(base_url=base_url, headers=auth_headers("fuzz-user"))
    if response.status_code == 502:
        assert response.json()["error"]["code"] == "marketplace_unavailable"
        return
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
    if response.status_code >= 400:
        assert set(response.json()) == {"error"}, response.text[:500]
