from __future__ import annotations

from tests.sync.conftest import worker, worker_context  # noqa: F401 - shared fixtures
