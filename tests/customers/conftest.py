from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import make_settings, running_app


@pytest.fixture
async def customers_api(
    database_url: str, redis_url: str, clean: None
) -> AsyncIterator[httpx.AsyncClient]:
    """The API without marketplace sandboxes: customers are read from stored orders."""
    async with running_app(make_settings(database_url, redis_url)) as client:
        yield client
