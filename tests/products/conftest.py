from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.config import Settings
from tests.products.helpers import stock_app, stock_worker


@pytest.fixture
async def stock_api(settings: Settings, clean: None) -> AsyncIterator[httpx.AsyncClient]:
    async with stock_app(settings) as client:
        yield client


@pytest.fixture
async def worker(settings: Settings, clean: None) -> AsyncIterator[None]:
    async with stock_worker(settings):
        yield
