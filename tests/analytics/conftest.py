from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.config import Settings
from tests.analytics.helpers import analytics_app
from tests.conftest import make_settings


@pytest.fixture
def analytics_settings(database_url: str, redis_url: str) -> Settings:
    return make_settings(database_url, redis_url)


@pytest.fixture
async def analytics_api(
    analytics_settings: Settings, clean: None
) -> AsyncIterator[httpx.AsyncClient]:
    async with analytics_app(analytics_settings) as client:
        yield client
