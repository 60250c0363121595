from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.config import Settings
from tests.conftest import make_settings, running_app


@pytest.fixture
def orders_settings(database_url: str, redis_url: str) -> Settings:
    """Settings without the marketplace sandboxes: reading orders never calls a marketplace."""
    return make_settings(database_url, redis_url)


@pytest.fixture
async def orders_api(orders_settings: Settings, clean: None) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(orders_settings) as client:
        yield client
