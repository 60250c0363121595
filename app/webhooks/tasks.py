"""Jobs of the webhooks domain (registered by app/worker.py)."""

from __future__ import annotations

from typing import Any

FUNCTIONS: list[Any] = []
CRON_JOBS: list[Any] = []
