"""Deployment-wide metrics: every process counts in memory, a flusher adds the counts to Redis
hashes about once a second, and `/metrics` reads Redis, so a scrape of any API process shows the
sum over every API process and worker. Recording is a dict increment, never a network call."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.platforms.errors import (
    AuthError,
    MarketplaceError,
    PermanentError,
    RateLimitedError,
    TransientError,
)

logger = logging.getLogger("app.metrics")

KEY_PREFIX = "omni:metrics:"
FLUSH_INTERVAL_SECONDS = 1.0
# A flush that cannot reach Redis keeps its counts for the next one, up to this many label sets
# per metric (beyond that the oldest work is dropped rather than growing without bound).
MAX_PENDING_SERIES = 10_000

HTTP_REQUESTS = "omni_http_requests_total"
HTTP_DURATION = "omni_http_request_duration_seconds"
SYNC_RUNS = "omni_sync_runs_total"
ORDERS_STORED = "omni_orders_stored_total"
MARKETPLACE_CALLS = "omni_marketplace_calls_total"
RATE_LIMIT_WAITS = "omni_rate_limit_waits_total"
RATE_LIMIT_WAIT_SECONDS = "omni_rate_limit_wait_seconds_total"
WEBHOOK_EVENTS = "omni_webhook_events_total"

# Label names of every counter; the Redis hash field is the JSON list of the label values.
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    HTTP_REQUESTS: (
        "HTTP requests answered, by method, route template and status",
        ("method", "route", "status"),
    ),
    SYNC_RUNS: ("Order sync runs finished, by platform and outcome", ("platform", "status")),
    ORDERS_STORED: ("Orders created or updated by syncs", ("platform",)),
    MARKETPLACE_CALLS: (
        "Marketplace HTTP attempts, by platform, endpoint and outcome",
        ("platform", "endpoint", "outcome"),
    ),
    RATE_LIMIT_WAITS: ("Marketplace calls that waited for a quota slot", ("platform",)),
    RATE_LIMIT_WAIT_SECONDS: ("Seconds spent waiting for quota slots", ("platform",)),
    WEBHOOK_EVENTS: ("Marketplace pushes, by platform and outcome", ("platform", "status")),
}
HISTOGRAM_LABELS = ("method", "route")
HISTOGRAM_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip

_ID_SEGMENT = re.compile(r"^(\d+|[0-9a-fA-F-]{16,}|[A-Za-z0-9_-]*\d[A-Za-z0-9_-]{15,})$")


def endpoint_of(url: str) -> str:
    """A URL's path with id-like segments folded to `{id}` (Graph API paths carry Page and
    order ids), so the endpoint label stays a short, fixed list."""
    path = urlsplit(url).path or "/"
    return "/".join("{id}" if _ID_SEGMENT.match(part) else part for part in path.split("/"))


def call_outcome(error: MarketplaceError | None) -> str:
    """The outcome label of one marketplace attempt: ok, rate_limited, transient, auth or
    permanent (the transport's failure hierarchy)."""
    if error is None:
        return "ok"
    for kind, label in (
        (RateLimitedError, "rate_limited"),
        (TransientError, "transient"),
        (AuthError, "auth"),
        (PermanentError, "permanent"),
    ):
        if isinstance(error, kind):
            return label
    return "error"


@dataclass
class _Histogram:
    buckets: list[int] = field(default_factory=lambda: [0] * len(HISTOGRAM_BUCKETS))
    count: int = 0
    total: float = 0.0


class Recorder:
    """This process's counts since the last flush."""

    def __init__(self) -> None:
        self.counters: defaultdict[str, defaultdict[tuple[str, ...], float]] = defaultdict(
            lambda: defaultdict(float)
        )
        self.histograms: defaultdict[tuple[str, ...], _Histogram] = defaultdict(_Histogram)

    def add(self, metric: str, labels: tuple[str, ...], amount: float = 1.0) -> None:
        self.counters[metric][labels] += amount

    def observe(self, labels: tuple[str, ...], seconds: float) -> None:
        histogram = self.histograms[labels]
        index = bisect.bisect_left(HISTOGRAM_BUCKETS, seconds)
        if index < len(HISTOGRAM_BUCKETS):
            histogram.buckets[index] += 1
        histogram.count += 1
        histogram.total += seconds

    def take(self) -> Recorder:
        """Hand the counts over and start afresh (no await in between: no increment is lost)."""
        taken = Recorder()
        taken.counters, self.counters = self.counters, taken.counters
        taken.histograms, self.histograms = self.histograms, taken.histograms
        return taken

    def merge(self, other: Recorder) -> None:
        """Put back counts a failed flush could not write."""
        for metric, series in other.counters.items():
            mine = self.counters[metric]
            if len(mine) + len(series) > MAX_PENDING_SERIES:
                continue
            for labels, amount in series.items():
                mine[labels] += amount
        for labels, histogram in other.histograms.items():
            target = self.histograms[labels]
            target.buckets = [a + b for a, b in zip(target.buckets, histogram.buckets, strict=True)]
            target.count += histogram.count
            target.total += histogram.total

    def empty(self) -> bool:
        return not self.histograms and not any(self.counters.values())


_recorder = Recorder()


def record_http(route: str, status: int, seconds: float, *, method: str = "GET") -> None:
    _recorder.add(HTTP_REQUESTS, (method, route, str(status)))
    _recorder.observe((method, route), seconds)


def record_sync(platform: str, status: str, orders_stored: int) -> None:
    _recorder.add(SYNC_RUNS, (platform, status))
    if orders_stored:
        _recorder.add(ORDERS_STORED, (platform,), orders_stored)


def record_marketplace_call(platform: str, endpoint: str, outcome: str) -> None:
    _recorder.add(MARKETPLACE_CALLS, (platform, endpoint, outcome))


def record_rate_limit_wait(platform: str, seconds: float) -> None:
    _recorder.add(RATE_LIMIT_WAITS, (platform,))
    _recorder.add(RATE_LIMIT_WAIT_SECONDS, (platform,), seconds)


def record_webhook(platform: str, status: str) -> None:
    _recorder.add(WEBHOOK_EVENTS, (platform, status))


def _field(labels: tuple[str, ...], *suffix: str) -> str:
    return orjson.dumps([*labels, *suffix]).decode()


async def flush(redis: Redis, recorder: Recorder | None = None) -> None:
    """Add this process's counts to Redis in one pipelined round trip. On failure they are
    kept for the next flush; the error is raised for the caller to log."""
    if recorder is None:
        recorder = _recorder
    taken = recorder.take()
    if taken.empty():
        return
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for metric, series in taken.counters.items():
                for labels, amount in series.items():
                    # Always the float form: a field once given a fraction refuses HINCRBY.
                    pipe.hincrbyfloat(KEY_PREFIX + metric, _field(labels), amount)
            key = KEY_PREFIX + HTTP_DURATION
            for labels, histogram in taken.histograms.items():
                for bound, count in zip(HISTOGRAM_BUCKETS, histogram.buckets, strict=True):
                    if count:
                        pipe.hincrby(key, _field(labels, "bucket", repr(bound)), count)
                pipe.hincrby(key, _field(labels, "count"), histogram.count)
                pipe.hincrbyfloat(key, _field(labels, "sum"), histogram.total)
            await pipe.execute()
    except BaseException:
        recorder.merge(taken)
        raise


class Flusher:
    """Flushes this process's counts every FLUSH_INTERVAL_SECONDS and once more at stop.
    Started by the API's lifespan and by the worker; Redis outages are logged, not raised."""

    def __init__(self, redis: Redis, interval: float = FLUSH_INTERVAL_SECONDS) -> None:
        self.redis = redis
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def start(self) -> Flusher:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="metrics-flusher")
        return self

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await self.flush_once()

    async def flush_once(self) -> None:
        try:
            await flush(self.redis)
        except (RedisError, OSError) as exc:
            if not self._failing:
                logger.warning("metrics not flushed; kept for the next try (%s)", exc)
            self._failing = True
        else:
            self._failing = False

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush_once()
