from __future__ import annotations

import pytest

from app.config import Settings
from tests.conftest import RunningSandbox, make_settings


@pytest.fixture
def settings(database_url: str, redis_url: str, sandbox: RunningSandbox) -> Settings:
    # The sync endpoints answer at once; the tests run the queued jobs through a burst worker.
    return make_settings(database_url, redis_url, sandbox, SYNC_WAIT_SECONDS=0)
