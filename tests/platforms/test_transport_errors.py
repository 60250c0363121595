"""HTTP failures that are not `httpx.TransportError`s still end as a classified marketplace
error: a body that breaks its Content-Encoding is transient, a redirect loop permanent."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx

from app.config import ClientTuning, Settings
from app.models import MarketplaceSyncLog
from app.platforms.base import ClientConfig, MemoryTokenStore
from app.platforms.errors import PermanentError, TransientError
from app.platforms.shopee.client import ShopeeClient
from app.platforms.types import Credentials
from app.sync.engine import run_sync
from app.worker_context import WorkerContext
from tests.conftest import (
    RunningSandbox,
    auth_headers,
    connection_body,
    create_sandbox_shop,
    make_settings,
    running_app,
)

BASE = "https://partner.example.test"
SHOP_INFO = "/api/v2/shop/get_shop_info"
ATTEMPTS = 3


def broken_gzip() -> httpx.Response:
    # A stream, so the body is decoded as it is read, as with a real server's answer.
    return httpx.Response(
        200, headers={"Content-Encoding": "gzip"}, stream=httpx.ByteStream(b"{not gzip at all")
    )


def shopee_client(http_client: httpx.AsyncClient | None = None) -> ShopeeClient:
    credentials = Credentials(
        shop_id="600000", api_key="1000123", api_secret="a1b2c3", access_token="token"
    )
    tuning = ClientTuning.model_construct(
        calls_per_second=10_000,
        detail_concurrency=2,
        backoff_base_seconds=0.001,
        backoff_cap_seconds=0.005,
        max_attempts=ATTEMPTS,
        timeout_seconds=5,
    )
    return ShopeeClient(
        credentials,
        ClientConfig(base_url=BASE, tuning=tuning),
        token_store=MemoryTokenStore(credentials),
        http_client=http_client,
    )


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


async def test_a_body_that_breaks_its_content_encoding_is_retried_then_transient(
    mock: respx.MockRouter,
) -> None:
    route = mock.get(SHOP_INFO).mock(side_effect=lambda request: broken_gzip())
    with pytest.raises(TransientError) as caught:
        await shopee_client().check_shop()
    assert type(caught.value) is TransientError
    assert "DecodingError" in caught.value.message
    assert route.call_count == ATTEMPTS


async def test_a_broken_body_once_then_a_good_one_succeeds(mock: respx.MockRouter) -> None:
    good = httpx.Response(200, json={"request_id": "r", "error": "", "shop_name": "Shop"})
    route = mock.get(SHOP_INFO).mock(side_effect=[broken_gzip(), good])
    assert (await shopee_client().check_shop()).name == "Shop"
    assert route.call_count == 2


async def test_a_redirect_loop_is_permanent_and_not_retried(mock: respx.MockRouter) -> None:
    loop = httpx.Response(302, headers={"Location": BASE + SHOP_INFO})
    route = mock.get(SHOP_INFO).mock(side_effect=lambda request: loop)
    async with httpx.AsyncClient(follow_redirects=True, max_redirects=3) as http:
        with pytest.raises(PermanentError) as caught:
            await shopee_client(http).check_shop()
    assert type(caught.value) is PermanentError
    assert "TooManyRedirects" in caught.value.message
    assert route.call_count == 4  # the first request and three redirects: one attempt


@pytest.fixture
async def quick_api(
    database_url: str, redis_url: str, sandbox: RunningSandbox, clean: None
) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    settings = make_settings(database_url, redis_url, sandbox, SYNC_WAIT_SECONDS=0)
    async with running_app(settings) as client:
        yield client, settings


async def test_a_sync_against_an_unreadable_marketplace_fails_with_the_reason(
    quick_api: tuple[httpx.AsyncClient, Settings], sandbox: RunningSandbox
) -> None:
    api, settings = quick_api
    user = "seller-transport"
    credentials = await create_sandbox_shop(sandbox, "lazada", order_count=3)
    created = await api.post(
        "/api/marketplace/connections",
        json=connection_body(user, "lazada", credentials),
        headers=auth_headers(user),
    )
    assert created.status_code == 201, created.text
    started = await api.post(
        "/api/marketplace/sync-orders",
        json={"connectionId": created.json()["data"]["id"], "userId": user},
        headers=auth_headers(user),
    )
    assert started.status_code == 202, started.text
    log_id = uuid.UUID(started.json()["data"]["syncLogId"])

    wc = WorkerContext.create(settings)
    try:
        # Every marketplace call of the worker now meets a body its gzip header lies about.
        with respx.mock(assert_all_called=False) as router:
            router.route().mock(side_effect=lambda request: broken_gzip())
            outcome = await run_sync(wc, log_id)
        async with wc.sessionmaker() as session:
            log = await session.get(MarketplaceSyncLog, log_id)
    finally:
        await wc.close()
    assert outcome == "failed"
    assert log is not None and log.status == "failed"
    assert log.error_message is not None
    assert "DecodingError" in log.error_message
    assert "Internal error" not in log.error_message
