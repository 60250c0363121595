"""A loopback receiver for alert webhooks that checks every signature, and settings naming it."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import uvicorn
from pydantic import Field, SecretStr
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.config import Settings
from tests.conftest import RunningSandbox, free_port, make_settings
from tests.sync.conftest import worker, worker_context  # noqa: F401 - shared fixtures

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


class AlertSettings(Settings):
    # Declared here too, so the tests run before and after app/config.py gains them.
    alert_webhook_url: str | None = Field(None, validation_alias="ALERT_WEBHOOK_URL")
    alert_webhook_secret: SecretStr | None = Field(None, validation_alias="ALERT_WEBHOOK_SECRET")


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        document: dict[str, Any] = orjson.loads(self.body)
        return document


@dataclass
class Receiver:
    url: str
    received: list[Received] = field(default_factory=list)
    fail_next: int = 0
    # Runs while the request is being answered (a test looks at the database meanwhile).
    during_request: Callable[[], Awaitable[None]] | None = None

    def verify(self, item: Received) -> None:
        """Checks the signature twice: by hand from the Standard Webhooks spec, and with its
        reference library (which also checks the timestamp is recent)."""
        key = base64.b64decode(SECRET.removeprefix("whsec_"))
        signed = f"{item.headers['webhook-id']}.{item.headers['webhook-timestamp']}.".encode()
        expected = base64.b64encode(hmac.new(key, signed + item.body, hashlib.sha256).digest())
        assert item.headers["webhook-signature"] == "v1," + expected.decode()
        Webhook(SECRET).verify(item.body, item.headers)


@pytest.fixture(scope="session")
async def receiver_server() -> AsyncIterator[Receiver]:
    receiver = Receiver(url="")

    async def receive(request: Request) -> Response:
        receiver.received.append(Received(dict(request.headers), await request.body()))
        if receiver.during_request is not None:
            await receiver.during_request()
        if receiver.fail_next > 0:
            receiver.fail_next -= 1
            return Response("receiver down", status_code=503)
        return Response(status_code=204)

    app = Starlette(routes=[Route("/alerts", receive, methods=["POST"])])
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    receiver.url = f"http://127.0.0.1:{port}/alerts"
    yield receiver
    server.should_exit = True
    await task


@pytest.fixture
def receiver(receiver_server: Receiver) -> Receiver:
    receiver_server.received.clear()
    receiver_server.fail_next = 0
    receiver_server.during_request = None
    return receiver_server


@pytest.fixture
def settings(
    database_url: str, redis_url: str, sandbox: RunningSandbox, receiver_server: Receiver
) -> Settings:
    base = make_settings(database_url, redis_url, sandbox)
    values = {name: getattr(base, name) for name in Settings.model_fields}
    values.update(alert_webhook_url=receiver_server.url, alert_webhook_secret=SecretStr(SECRET))
    return AlertSettings(**values)
