"""`/metrics`: the deployment's counters from Redis (every process's flushes added up), the
route template as the label, and the live gauges."""

from __future__ import annotations

import asyncio
import socket
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from arq.connections import ArqRedis
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.metrics import service as metrics
from app.metrics.service import Flusher, Recorder
from app.models import MarketplaceSyncLog
from tests.conftest import RunningSandbox, auth_headers, running_app
from tests.metrics.conftest import matching, scrape, value
from tests.sync.conftest import connect_shop, sync


async def test_counts_of_every_process_add_up_in_one_scrape(api: httpx.AsyncClient) -> None:
    redis: ArqRedis = api._transport.app.state.redis  # type: ignore[attr-defined]
    metrics.record_sync("shopee", "success", 12)
    metrics.record_webhook("lazada", "processed")
    metrics.record_rate_limit_wait("shopee", 0.75)
    # Another process (a worker) flushed its own counts into the same Redis.
    worker = Recorder()
    worker.add(metrics.SYNC_RUNS, ("shopee", "success"))
    worker.add(metrics.ORDERS_STORED, ("shopee",), 30)
    worker.add(metrics.RATE_LIMIT_WAIT_SECONDS, ("shopee",), 0.5)
    await metrics.flush(redis, worker)

    samples = await scrape(api)
    assert value(samples, "omni_sync_runs_total", platform="shopee", status="success") == 2
    assert value(samples, "omni_orders_stored_total", platform="shopee") == 42
    assert value(samples, "omni_webhook_events_total", platform="lazada", status="processed") == 1
    assert value(samples, "omni_rate_limit_waits_total", platform="shopee") == 1
    assert value(samples, "omni_rate_limit_wait_seconds_total", platform="shopee") == 1.25
    assert value(samples, "omni_queue_depth") == 0
    assert value(samples, "omni_metrics_source_up", source="redis") == 1
    assert value(samples, "omni_metrics_source_up", source="database") == 1


async def test_requests_are_labelled_by_route_template_not_path(api: httpx.AsyncClient) -> None:
    for _ in range(2):
        await api.get(f"/api/marketplace/connections/{uuid.uuid4()}", headers=auth_headers("u1"))
    await api.get("/no/such/page")
    await api.get("/health")

    samples = await scrape(api)
    route = "/api/marketplace/connections/{connectionId}"
    by_route = matching(samples, "omni_http_requests_total", route=route)
    assert sum(by_route.values()) == 2
    assert {dict(labels)["status"] for labels in by_route} == {"404"}
    assert value(samples, "omni_http_requests_total", method="GET", route="unmatched", status="404")
    assert value(samples, "omni_http_requests_total", method="GET", route="/health", status="200")
    assert not [labels for (name, labels) in samples if "/no/such/page" in dict(labels).values()]
    # The latency histogram by route: every request falls in the +Inf bucket, sums are kept.
    labels = {"method": "GET", "route": route}
    assert value(samples, "omni_http_request_duration_seconds_count", **labels) == 2
    assert value(samples, "omni_http_request_duration_seconds_bucket", le="+Inf", **labels) == 2
    assert value(samples, "omni_http_request_duration_seconds_sum", **labels) > 0
    buckets = matching(samples, "omni_http_request_duration_seconds_bucket", **labels)
    ordered = sorted(buckets.items(), key=lambda item: float(dict(item[0])["le"]))
    assert [v for _, v in ordered] == sorted(v for _, v in ordered)  # cumulative


async def test_queue_depth_counts_waiting_jobs(api: httpx.AsyncClient, redis: ArqRedis) -> None:
    await redis.enqueue_job("verify_connection", str(uuid.uuid4()))
    await redis.enqueue_job("verify_connection", str(uuid.uuid4()), _defer_by=60)
    assert value(await scrape(api), "omni_queue_depth") == 2


async def test_flusher_writes_counts_in_the_background_and_at_stop(redis: ArqRedis) -> None:
    flusher = Flusher(redis, interval=0.02).start()
    metrics.record_webhook("shopee", "received")
    key = metrics.KEY_PREFIX + metrics.WEBHOOK_EVENTS
    for _ in range(100):
        if await redis.hgetall(key):
            break
        await asyncio.sleep(0.02)
    metrics.record_webhook("shopee", "received")
    await flusher.stop()
    assert list((await redis.hgetall(key)).values()) == [b"2"]


async def test_counts_survive_a_flush_while_redis_is_down(redis: ArqRedis) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = Redis.from_url(f"redis://127.0.0.1:{port}/0")
    metrics.record_marketplace_call("lazada", "/orders/get", "ok")
    with pytest.raises((RedisConnectionError, OSError)):
        await metrics.flush(down)
    await Flusher(down).flush_once()  # logged, not raised
    await down.aclose()
    await metrics.flush(redis)
    key = metrics.KEY_PREFIX + metrics.MARKETPLACE_CALLS
    assert list((await redis.hgetall(key)).values()) == [b"1"]


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        (
            "https://graph.facebook.com/v18.0/1234567890/commerce_orders",
            "/v18.0/{id}/commerce_orders",
        ),
        ("https://partner.shopeemobile.com/api/v2/order/get_order_list", None),
        ("https://api.lazada.co.th/rest/orders/get?x=1", "/rest/orders/get"),
    ],
)
def test_endpoint_labels_fold_ids(url: str, endpoint: str | None) -> None:
    assert metrics.endpoint_of(url) == (endpoint or httpx.URL(url).path)


async def _two_connections_two_hours_and_one_hour_behind(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> list[str]:
    ids = []
    for hours in (2, 1):
        connection, _ = await connect_shop(api, sandbox, "lazada", order_count=2)
        assert (await sync(api, connection)).json()["data"]["status"] == "success"
        async with session_factory() as session:
            await session.execute(
                update(MarketplaceSyncLog)
                .where(MarketplaceSyncLog.connection_id == uuid.UUID(connection["id"]))
                .values(finished_at=datetime.now(UTC) - timedelta(hours=hours))
            )
            await session.commit()
        ids.append(connection["id"])
    return ids


async def test_sync_lag_is_the_platforms_largest_without_connection_ids(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker: None,
) -> None:
    ids = await _two_connections_two_hours_and_one_hour_behind(api, sandbox, session_factory)
    response = await api.get("/metrics")
    assert response.status_code == 200
    assert not any(connection_id in response.text for connection_id in ids)
    assert "connection_id" not in response.text
    samples = matching(await scrape(api), "omni_connection_sync_lag_seconds")
    assert list(samples) == [frozenset({("platform", "lazada")})]
    assert 7200 <= next(iter(samples.values())) < 7300


async def test_with_a_metrics_token_the_lag_is_given_per_connection_to_its_bearer(
    settings: Settings,
    clean: None,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker: None,
) -> None:
    token = "scrape-" + "x" * 24
    async with running_app(settings.model_copy(update={"metrics_token": SecretStr(token)})) as api:
        ids = await _two_connections_two_hours_and_one_hour_behind(api, sandbox, session_factory)
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
            refused = await api.get("/metrics", headers=headers)
            assert refused.status_code == 401, refused.text
            assert refused.json()["error"]["code"] == "unauthorized"
            assert ids[0] not in refused.text
        response = await api.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        samples: dict[frozenset[tuple[str, str]], float] = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.name == "omni_connection_sync_lag_seconds":
                    samples[frozenset(sample.labels.items())] = sample.value
        assert 7200 <= samples[frozenset({("platform", "lazada")})] < 7300
        older = samples[frozenset({("platform", "lazada"), ("connection_id", ids[0])})]
        newer = samples[frozenset({("platform", "lazada"), ("connection_id", ids[1])})]
        assert 7200 <= older < 7300 and 3600 <= newer < 3700


async def test_whole_and_fractional_amounts_add_up_in_one_series(redis: ArqRedis) -> None:
    for seconds in (0.5, 1.0, 2.0):  # each flushed on its own, as a worker would
        metrics.record_rate_limit_wait("lazada", seconds)
        await metrics.flush(redis)
    key = metrics.KEY_PREFIX + metrics.RATE_LIMIT_WAIT_SECONDS
    assert [float(v) for v in (await redis.hgetall(key)).values()] == [3.5]
