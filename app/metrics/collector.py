"""The `/metrics` exposition: the deployment's counters from Redis plus gauges computed at
scrape time (queue depth, each connection's sync lag), rendered by prometheus_client."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
from arq.constants import default_queue_name
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import DatabaseUnavailable
from app.metrics.service import (
    COUNTERS,
    HISTOGRAM_BUCKETS,
    HISTOGRAM_LABELS,
    HTTP_DURATION,
    KEY_PREFIX,
)

logger = logging.getLogger("app.metrics")

SCRAPE_TIMEOUT_SECONDS = 5.0

# A connection that never finished a successful sync lags since it was connected. "partial"
# counts as successful: the run completed and its waiting orders are retried by the next one.
SYNC_LAG_SQL = text(
    """
    SELECT c.id::text, c.platform_code,
           EXTRACT(EPOCH FROM now() - COALESCE(last.finished_at, c.created_at))::float8
    FROM marketplace_connections c
    LEFT JOIN LATERAL (
        SELECT l.finished_at FROM marketplace_sync_logs l
        WHERE l.connection_id = c.id AND l.status IN ('success', 'partial')
        ORDER BY l.started_at DESC LIMIT 1
    ) last ON true
    WHERE c.status <> 'disconnected'
    ORDER BY c.id
    """
)


@dataclass
class Snapshot:
    counters: dict[str, dict[bytes, bytes]] = field(default_factory=dict)
    histogram: dict[bytes, bytes] = field(default_factory=dict)
    queue_depth: int | None = None
    sync_lag: list[tuple[str, str, float]] = field(default_factory=list)
    redis_up: bool = False
    database_up: bool = False


async def read_redis(redis: Redis, snapshot: Snapshot) -> None:
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for metric in COUNTERS:
                pipe.hgetall(KEY_PREFIX + metric)
            pipe.hgetall(KEY_PREFIX + HTTP_DURATION)
            pipe.zcard(default_queue_name)
            *counters, histogram, depth = await pipe.execute()
    except (RedisError, OSError) as exc:
        logger.warning("metrics: Redis unavailable at scrape (%s)", type(exc).__name__)
        return
    snapshot.counters = dict(zip(COUNTERS, counters, strict=True))
    snapshot.histogram = histogram
    snapshot.queue_depth = int(depth)
    snapshot.redis_up = True


async def read_database(sessionmaker: async_sessionmaker[AsyncSession], snapshot: Snapshot) -> None:
    try:
        async with sessionmaker() as session:
            rows = (await session.execute(SYNC_LAG_SQL)).all()
    except (DBAPIError, SQLAlchemyError, OSError, DatabaseUnavailable) as exc:
        logger.warning("metrics: database unavailable at scrape (%s)", type(exc).__name__)
        return
    snapshot.sync_lag = [(row[0], row[1], max(0.0, float(row[2]))) for row in rows]
    snapshot.database_up = True


async def take_snapshot(redis: Redis, sessionmaker: async_sessionmaker[AsyncSession]) -> Snapshot:
    snapshot = Snapshot()
    try:
        async with asyncio.timeout(SCRAPE_TIMEOUT_SECONDS):
            await asyncio.gather(read_redis(redis, snapshot), read_database(sessionmaker, snapshot))
    except TimeoutError:
        logger.warning("metrics: scrape sources timed out; partial answer")
    return snapshot


def _labels(raw: bytes) -> list[str]:
    return [str(value) for value in orjson.loads(raw)]


class DeploymentCollector(Collector):
    """One scrape's figures, handed to prometheus_client to render."""

    def __init__(self, snapshot: Snapshot, *, per_connection: bool = False) -> None:
        self.snapshot = snapshot
        self.per_connection = per_connection

    def collect(self) -> Iterator[Metric]:
        yield from self._counters()
        yield self._histogram()
        depth = GaugeMetricFamily("omni_queue_depth", "Jobs waiting in the arq queue")
        if self.snapshot.queue_depth is not None:
            depth.add_metric([], self.snapshot.queue_depth)
        yield depth
        yield self._sync_lag()
        up = GaugeMetricFamily(
            "omni_metrics_source_up", "Whether a scrape source answered", labels=["source"]
        )
        up.add_metric(["redis"], 1.0 if self.snapshot.redis_up else 0.0)
        up.add_metric(["database"], 1.0 if self.snapshot.database_up else 0.0)
        yield up

    def _sync_lag(self) -> Metric:
        """The largest lag per platform; per connection id too only for the token's bearer
        (connection ids are every tenant's, and one series each grows with the tenants)."""
        name = "omni_connection_sync_lag_seconds"
        lag = GaugeMetricFamily(
            name,
            "Seconds since the last successful sync: the platform's largest, and with "
            "METRICS_TOKEN each connection's",
            labels=["platform"],
        )
        largest: dict[str, float] = {}
        for _, platform, seconds in self.snapshot.sync_lag:
            largest[platform] = max(seconds, largest.get(platform, 0.0))
        for platform, seconds in sorted(largest.items()):
            lag.add_metric([platform], seconds)
        if self.per_connection:
            for connection_id, platform, seconds in self.snapshot.sync_lag:
                labels = {"platform": platform, "connection_id": connection_id}
                lag.samples.append(Sample(name, labels, seconds))
        return lag

    def _counters(self) -> Iterator[Metric]:
        for metric, (documentation, label_names) in COUNTERS.items():
            family = CounterMetricFamily(metric, documentation, labels=list(label_names))
            for raw, value in sorted(self.snapshot.counters.get(metric, {}).items()):
                labels = _labels(raw)
                if len(labels) == len(label_names):
                    family.add_metric(labels, float(value))
            yield family

    def _histogram(self) -> Metric:
        family = HistogramMetricFamily(
            HTTP_DURATION, "HTTP request latency by route", labels=list(HISTOGRAM_LABELS)
        )
        series: dict[tuple[str, ...], dict[str, float]] = {}
        width = len(HISTOGRAM_LABELS)
        for raw, value in self.snapshot.histogram.items():
            parts = _labels(raw)
            labels, kind = tuple(parts[:width]), parts[width:]
            if kind[:1] == ["bucket"] and len(kind) == 2:
                series.setdefault(labels, {})[f"le:{kind[1]}"] = float(value)
            elif kind in (["count"], ["sum"]):
                series.setdefault(labels, {})[kind[0]] = float(value)
        for labels, values in sorted(series.items()):
            cumulative = 0.0
            buckets: list[tuple[str, float]] = []
            for bound in HISTOGRAM_BUCKETS:
                cumulative += values.get(f"le:{bound!r}", 0.0)
                buckets.append((repr(bound), cumulative))
            buckets.append(("+Inf", values.get("count", cumulative)))
            family.add_metric(list(labels), buckets, values.get("sum", 0.0))
        return family


def render(snapshot: Snapshot, *, per_connection: bool = False) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeploymentCollector(snapshot, per_connection=per_connection))
    return generate_latest(registry)
