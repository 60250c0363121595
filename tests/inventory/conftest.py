from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.config import Settings
from tests.conftest import RunningSandbox, make_settings
from tests.products.helpers import stock_app, stock_worker
from tests.webhooks.conftest import PUBLIC_BASE_URL


@pytest.fixture
async def stock_api(settings: Settings, clean: None) -> AsyncIterator[httpx.AsyncClient]:
    async with stock_app(settings) as client:
        yield client


@pytest.fixture
async def worker(settings: Settings, clean: None) -> AsyncIterator[None]:
    async with stock_worker(settings):
        yield


@pytest.fixture
def settings(database_url: str, redis_url: str, sandbox: RunningSandbox) -> Settings:
    return make_settings(database_url, redis_url, sandbox, PUBLIC_BASE_URL=PUBLIC_BASE_URL)
