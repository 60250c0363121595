from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.config import Settings
from tests.conftest import make_settings, running_app
from tests.sync.conftest import worker  # noqa: F401 - a fixture for the end-to-end tests

EXPORT = "/api/marketplace/buyers/export"


@pytest.fixture
async def buyers_api(
    database_url: str, redis_url: str, clean: None
) -> AsyncIterator[httpx.AsyncClient]:
    """The API without marketplace sandboxes: these tests read stored orders only."""
    settings: Settings = make_settings(database_url, redis_url)
    async with running_app(settings) as client:
        yield client
