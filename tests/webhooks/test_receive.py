"""Receiving pushes: signatures on the raw bytes, duplicates, limits and the Meta handshake."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.webhooks import service
from tests.conftest import RunningSandbox, auth_headers, connection_body, create_sandbox_shop
from tests.sync.conftest import connect_shop
from tests.webhooks.conftest import (
    PUSH_URL,
    VERIFY_TOKEN,
    lazada_push,
    sample_push,
    shopee_push,
    signed,
    stored_events,
)

PLATFORMS = ["shopee", "lazada", "facebook"]


async def post(
    api: httpx.AsyncClient, body: bytes, headers: dict[str, str], path: str = PUSH_URL
) -> httpx.Response:
    return await api.post(
        path, content=body, headers={"Content-Type": "application/json", **headers}
    )


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_signed_push_is_stored_and_answered_with_an_empty_200(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    queued_jobs: Any,
    platform: str,
) -> None:
    connection, credentials = await connect_shop(api, sandbox, platform)
    body = sample_push(platform, credentials)

    response = await post(api, body, signed(platform, credentials, body))

    assert response.status_code == 200 and response.content == b""
    [event] = await stored_events(session_factory)
    assert str(event.connection_id) == connection["id"]
    assert (event.platform_code, event.status, event.user_id) == (platform, "received", "seller-1")
    assert await queued_jobs() == 1


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("signature", ["bad", "missing"])
async def test_bad_or_missing_signature_is_401_counted_and_not_stored(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    queued_jobs: Any,
    platform: str,
    signature: str,
) -> None:
    _, credentials = await connect_shop(api, sandbox, platform)
    body = sample_push(platform, credentials)
    headers = signed(platform, {**credentials, "apiSecret": "not-the-secret"}, body)
    if signature == "missing":
        headers = {}
    before = service.REJECTIONS[(platform, "bad_signature")]

    response = await post(api, body, headers)

    assert response.status_code == 401
    assert service.REJECTIONS[(platform, "bad_signature")] == before + 1
    assert await stored_events(session_factory) == []
    assert await queued_jobs() == 0


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_replayed_push_is_a_duplicate_that_does_nothing_more(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    queued_jobs: Any,
    platform: str,
) -> None:
    _, credentials = await connect_shop(api, sandbox, platform)
    body = sample_push(platform, credentials)
    headers = signed(platform, credentials, body)

    first = await post(api, body, headers)
    again = await post(api, body, headers)

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.content == b""
    assert len(await stored_events(session_factory)) == 1
    assert await queued_jobs() == 1


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_a_signature_replayed_on_another_body_is_refused(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    platform: str,
) -> None:
    _, credentials = await connect_shop(api, sandbox, platform)
    body = sample_push(platform, credentials)
    headers = signed(platform, credentials, body)
    tampered = body.replace(b'"', b' "', 1)  # same JSON, other bytes: the bytes are signed

    response = await post(api, tampered, headers)

    assert response.status_code == 401
    assert await stored_events(session_factory) == []


async def test_a_shopee_signature_is_bound_to_the_callback_url(
    api: httpx.AsyncClient, sandbox: RunningSandbox, session_factory: async_sessionmaker
) -> None:
    _, credentials = await connect_shop(api, sandbox, "shopee")
    body = sample_push("shopee", credentials)
    headers = signed("shopee", credentials, body, PUSH_URL)

    elsewhere = await post(api, body, headers, PUSH_URL + "/shopee")
    right = await post(
        api, body, signed("shopee", credentials, body, PUSH_URL + "/shopee"), PUSH_URL + "/shopee"
    )

    assert (elsewhere.status_code, right.status_code) == (401, 200)
    assert len(await stored_events(session_factory)) == 1


async def test_a_shop_no_connection_owns_is_401(
    api: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    body = shopee_push("123456789")
    before = service.REJECTIONS[("shopee", "unknown_shop")]

    response = await post(api, body, {"Authorization": "0" * 64})

    assert response.status_code == 401
    assert service.REJECTIONS[("shopee", "unknown_shop")] == before + 1
    assert await stored_events(session_factory) == []


async def test_every_connection_owning_the_shop_is_served(
    api: httpx.AsyncClient, sandbox: RunningSandbox, session_factory: async_sessionmaker
) -> None:
    credentials = await create_sandbox_shop(sandbox, "lazada")
    for user in ("seller-1", "seller-2"):
        created = await api.post(
            "/api/marketplace/connections",
            json=connection_body(user, "lazada", credentials),
            headers=auth_headers(user),
        )
        assert created.status_code == 201, created.text
    body = lazada_push(credentials["shopId"])

    response = await post(api, body, signed("lazada", credentials, body))

    assert response.status_code == 200
    events = await stored_events(session_factory)
    assert sorted(e.user_id for e in events) == ["seller-1", "seller-2"]
    assert len({e.connection_id for e in events}) == 2


async def test_the_platform_path_and_the_shared_path_store_the_same_event_once(
    api: httpx.AsyncClient, sandbox: RunningSandbox, session_factory: async_sessionmaker
) -> None:
    _, credentials = await connect_shop(api, sandbox, "lazada")
    body = lazada_push(credentials["shopId"])
    headers = signed("lazada", credentials, body)

    shared = await post(api, body, headers)
    named = await post(api, body, headers, PUSH_URL + "/lazada")

    assert (shared.status_code, named.status_code) == (200, 200)
    assert len(await stored_events(session_factory)) == 1


async def test_malformed_json_is_400_and_stores_nothing(
    api: httpx.AsyncClient, session_factory: async_sessionmaker
) -> None:
    response = await post(api, b'{"code": 3, "shop_id": ', {"Authorization": "x"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_webhook"
    assert await stored_events(session_factory) == []


async def test_a_body_over_one_megabyte_is_413(
    api: httpx.AsyncClient, sandbox: RunningSandbox, session_factory: async_sessionmaker
) -> None:
    _, credentials = await connect_shop(api, sandbox, "shopee")
    padding = "x" * service.MAX_BODY_BYTES
    body = shopee_push(credentials["shopId"], ordersn="250101AAAAAAAA", note=padding)

    declared = await post(api, body, signed("shopee", credentials, body))

    async def chunks() -> Any:  # no Content-Length: the cap applies while reading
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    streamed = await api.post(
        PUSH_URL, content=chunks(), headers=signed("shopee", credentials, body)
    )

    assert (declared.status_code, streamed.status_code) == (413, 413)
    assert await stored_events(session_factory) == []


@pytest.mark.parametrize("path", [PUSH_URL, PUSH_URL + "/facebook"])
async def test_meta_handshake_echoes_the_challenge_only_for_our_token(
    api: httpx.AsyncClient, path: str
) -> None:
    query = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}

    ok = await api.get(path, params={**query, "hub.verify_token": VERIFY_TOKEN})
    wrong = await api.get(path, params={**query, "hub.verify_token": "guess"})
    not_subscribe = await api.get(
        path, params={**query, "hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN}
    )

    assert ok.status_code == 200 and ok.text == "1158201444"
    assert ok.headers["content-type"].startswith("text/plain")
    assert (wrong.status_code, not_subscribe.status_code) == (403, 403)


async def test_the_event_and_its_job_are_kept_when_redis_is_down_and_the_sweeper_queues_it(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    queued_jobs: Any,
    worker_context: Any,
) -> None:
    from sqlalchemy import text, update

    from app.models import MarketplaceWebhook
    from tests.conftest import free_port, make_settings, running_app

    _, credentials = await connect_shop(api, sandbox, "shopee")
    body = sample_push("shopee", credentials)
    redis_down = make_settings(database_url, f"redis://127.0.0.1:{free_port()}/0", sandbox)
    async with running_app(redis_down) as no_queue:
        response = await post(no_queue, body, signed("shopee", credentials, body))
    assert response.status_code == 200
    [event] = await stored_events(session_factory)
    assert event.status == "received"
    # The drain job is an outbox row of the event's own transaction: it waits for Redis.
    assert await queued_jobs() == 1

    async with session_factory() as session:  # the job was lost, a few seconds have passed
        await session.execute(text("DELETE FROM job_outbox"))
        await session.execute(
            update(MarketplaceWebhook).values(next_attempt_at=text("now() - interval '1 minute'"))
        )
        await session.commit()
    assert await service.sweep(worker_context) == 1
    assert await queued_jobs() == 1


async def test_the_outermost_intake_answers_as_the_routes_do(
    api: httpx.AsyncClient,
    settings: Any,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    queued_jobs: Any,
) -> None:
    from app.main import create_app
    from app.webhooks.intake import PushIntakeMiddleware

    _, credentials = await connect_shop(api, sandbox, "shopee")
    app = create_app(settings)
    app.add_middleware(PushIntakeMiddleware)
    body = sample_push("shopee", credentials)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://omni.test") as client:
            accepted = await post(client, body, {**signed("shopee", credentials, body)})
            refused = await post(client, body, {"X-Request-ID": "push-1"})
            other = await client.get("/health")

    assert (accepted.status_code, accepted.content) == (200, b"")
    assert accepted.headers["x-request-id"]
    assert refused.status_code == 401 and refused.headers["x-request-id"] == "push-1"
    assert refused.json()["error"]["code"] == "webhook_unauthorized"
    assert other.status_code == 200
    assert len(await stored_events(session_factory)) == 1
    assert await queued_jobs() == 1
