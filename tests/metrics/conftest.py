from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from app.main import create_app
from app.metrics.middleware import HttpMetricsMiddleware
from app.metrics.router import router as metrics_router
from tests.sync.conftest import worker, worker_context  # noqa: F401 - shared fixtures

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def with_metrics(app: FastAPI) -> FastAPI:
    """The app as app/main.py wires it once /metrics is in: the route and the middleware
    (added here only while main.py does not add them itself)."""
    if not any(getattr(route, "path", None) == "/metrics" for route in app.routes):
        app.include_router(metrics_router)
    if not any(m.cls is HttpMetricsMiddleware for m in app.user_middleware):
        app.add_middleware(HttpMetricsMiddleware)
    return app


@pytest.fixture
async def api(settings: Settings, clean: None) -> AsyncIterator[httpx.AsyncClient]:
    app = with_metrics(create_app(settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://omni.test") as client:
            yield client


async def scrape(api: httpx.AsyncClient) -> Samples:
    response = await api.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def matching(samples: Samples, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
    wanted = set(labels.items())
    return {key: v for (n, key), v in samples.items() if n == name and wanted <= key}


@pytest.fixture(autouse=True)
def fresh_counts(clean: None) -> None:
    """Counts this process recorded in earlier tests are not this test's (Redis is flushed)."""
    from app.metrics import service

    service._recorder.take()
