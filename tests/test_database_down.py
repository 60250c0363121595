"""With PostgreSQL unreachable every route answers 503 `database_unavailable` with
Retry-After, and the API recovers by itself once the database is back. The shared server is
never stopped: the API reaches it through a loopback TCP proxy that the test cuts."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import auth_headers, make_settings, running_app
from tests.tcp_proxy import TcpProxy

USER = "db-down-seller"


@pytest.fixture
async def proxy(database_url: str) -> TcpProxy:
    if urlsplit(database_url).hostname is None:
        # The embedded server listens on a unix socket only; CI's is on TCP.
        pytest.skip("needs a PostgreSQL reachable over TCP (TEST_DATABASE_URL)")
    running = TcpProxy.to_url(database_url)
    await running.start()
    return running


async def _answers(api: httpx.AsyncClient) -> list[httpx.Response]:
    """A list route, a by-id route, a POST, and the token-free platform list."""
    headers = auth_headers(USER)
    return [
        await api.get("/api/marketplace/connections", headers=headers),
        await api.get("/api/marketplace/orders", headers=headers),
        await api.get(f"/api/marketplace/connections/{uuid.uuid4()}", headers=headers),
        await api.get("/api/marketplace/orders/1", headers=headers),
        await api.post(
            "/api/marketplace/sync-orders",
            json={"connectionId": str(uuid.uuid4()), "userId": USER},
            headers=headers,
        ),
        await api.get("/api/marketplace/platforms"),
    ]


def _assert_unavailable(responses: list[httpx.Response]) -> None:
    for response in responses:
        assert response.status_code == 503, (response.request.url, response.text)
        assert response.json()["error"]["code"] == "database_unavailable"
        assert int(response.headers["Retry-After"]) > 0
        assert response.headers["X-Request-ID"]


async def test_every_route_is_503_while_the_database_is_down_and_recovers(
    database_url: str, redis_url: str, clean: None, proxy: TcpProxy
) -> None:
    settings = make_settings(proxy.url(database_url), redis_url)
    async with running_app(settings) as api:
        before = [r.status_code for r in await _answers(api)]
        assert before == [200, 200, 404, 404, 404, 200]

        await proxy.close()
        # Twice: first on the pooled connections that just died, then on refused connects.
        _assert_unavailable(await _answers(api))
        _assert_unavailable(await _answers(api))
        ready = await api.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"].startswith("unavailable")

        await proxy.start()
        after = [r.status_code for r in await _answers(api)]
        assert after == before
        assert (await api.get("/ready")).status_code == 200
    await proxy.close()


async def test_a_database_that_never_answered_is_503(
    database_url: str, redis_url: str, clean: None
) -> None:
    never_started = TcpProxy.to_url(database_url)
    settings = make_settings(never_started.url(database_url), redis_url)
    async with running_app(settings) as api:
        _assert_unavailable(await _answers(api))


async def test_metrics_serve_the_redis_figures_with_the_database_marked_down(
    database_url: str, redis_url: str, clean: None, proxy: TcpProxy
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from app.metrics import service as metrics

    settings = make_settings(proxy.url(database_url), redis_url)
    async with running_app(settings) as api:
        await proxy.close()
        metrics.record_sync("shopee", "success", 3)
        for _ in range(2):  # the pooled connections that just died, then refused connects
            response = await api.get("/metrics")
            assert response.status_code == 200, response.text
            samples = {
                (sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in text_string_to_metric_families(response.text)
                for sample in family.samples
            }
            assert samples[("omni_metrics_source_up", (("source", "database"),))] == 0
            assert samples[("omni_metrics_source_up", (("source", "redis"),))] == 1
            assert samples[("omni_orders_stored_total", (("platform", "shopee"),))] == 3
            assert ("omni_queue_depth", ()) in samples
        await proxy.start()
    await proxy.close()
