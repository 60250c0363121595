"""One HTTP transport for every marketplace: rate limiting, retries, back-off, classification."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpx
import orjson

from app.config import ClientTuning
from app.jobs.policy import RetryPolicy
from app.metrics import service as metrics
from app.platforms.errors import (
    MarketplaceError,
    PermanentError,
    RateLimitedError,
    TransientError,
)

logger = logging.getLogger("app.platforms")

EventSink = Callable[[str, Mapping[str, Any]], None]
# Turns a response into its JSON payload, or raises the right MarketplaceError subclass.
Classifier = Callable[[httpx.Response], dict[str, Any]]


def ignore_events(event: str, data: Mapping[str, Any]) -> None:
    """The default event sink: a client used outside a sync reports to nobody."""


# Set while a caller holds a database row lock around a call (a token refresh): the call makes
# one attempt, and the caller retries after releasing the lock.
_single_attempt: ContextVar[bool] = ContextVar("single_attempt", default=False)


@contextmanager
def single_attempt() -> Iterator[None]:
    token = _single_attempt.set(True)
    try:
        yield
    finally:
        _single_attempt.reset(token)


class RateLimiter:
    """A token bucket for one connection's calls, plus a shared pause when a platform says
    "slow down" (so every concurrent detail batch of that connection waits, not just one)."""

    def __init__(self, calls_per_second: float, burst: int | None = None) -> None:
        self.rate = calls_per_second
        self.capacity = float(burst if burst is not None else max(1, round(calls_per_second)))
        self._tokens = self.capacity
        self._updated = time.monotonic()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    async def acquire(self) -> float:
        """Wait for a call slot; returns the seconds waited."""
        waited = 0.0
        async with self._lock:
            while True:
                now = time.monotonic()
                if now < self._paused_until:
                    delay = self._paused_until - now
                else:
                    self._tokens = min(
                        self.capacity, self._tokens + (now - self._updated) * self.rate
                    )
                    self._updated = now
                    if self._tokens >= 1:
                        self._tokens -= 1
                        return waited
                    delay = (1 - self._tokens) / self.rate
                await asyncio.sleep(delay)
                waited += delay


def backoff_delay(attempt: int, tuning: ClientTuning) -> float:
    """Capped exponential back-off with jitter (attempt counts from 1): the one retry policy's."""
    return RetryPolicy.from_tuning(tuning).delay(attempt)


def parse_retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def decode_json(response: httpx.Response, platform: str) -> dict[str, Any]:
    """The body as a JSON object; a malformed body is transient (proxies and overloaded
    gateways answer HTML), so it is retried rather than trusted."""
    try:
        payload = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise TransientError(
            f"Malformed JSON from the platform (HTTP {response.status_code})",
            platform=platform,
            status_code=response.status_code,
        ) from exc
    if not isinstance(payload, dict):
        raise TransientError(
            "Unexpected JSON shape from the platform", platform=platform, status_code=200
        )
    return payload


class PlatformTransport:
    def __init__(
        self,
        *,
        platform: str,
        tuning: ClientTuning,
        events: EventSink = ignore_events,
        http_client: httpx.AsyncClient | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.platform = platform
        self.tuning = tuning
        self.events = events
        self._owns_client = http_client is None
        self.client = http_client or httpx.AsyncClient(
            timeout=httpx.Timeout(tuning.timeout_seconds),
            limits=httpx.Limits(max_connections=max(10, tuning.detail_concurrency * 2)),
        )
        self.limiter = limiter or RateLimiter(tuning.calls_per_second)

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        classify: Classifier,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: Mapping[str, Any] | None = None,
        auth: httpx.Auth | None = None,
    ) -> dict[str, Any]:
        """Send one logical call, retrying transient and rate-limited failures only."""
        max_attempts = 1 if _single_attempt.get() else self.tuning.max_attempts
        endpoint = metrics.endpoint_of(url)
        attempt = 0
        while True:
            attempt += 1
            waited = await self.limiter.acquire()
            if waited > 0:
                metrics.record_rate_limit_wait(self.platform, waited)
            if waited > 0.5:
                self.events("rate_limit_wait", {"seconds": round(waited, 3)})
            try:
                response = await self.client.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    data=data,
                    auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
                )
                payload = classify(response)
                metrics.record_marketplace_call(self.platform, endpoint, "ok")
                return payload
            except httpx.TimeoutException as exc:
                error: MarketplaceError = TransientError(
                    f"Timed out calling the platform ({type(exc).__name__})", platform=self.platform
                )
            except httpx.TransportError as exc:
                error = TransientError(
                    f"Could not reach the platform ({type(exc).__name__})", platform=self.platform
                )
            except httpx.DecodingError as exc:
                # A body that breaks its own Content-Encoding: a proxy or gateway fault.
                error = TransientError(
                    f"Unreadable answer from the platform ({type(exc).__name__})",
                    platform=self.platform,
                )
            except (httpx.TooManyRedirects, httpx.InvalidURL) as exc:
                # A base URL that redirects in circles is a set-up fault; retrying cannot help.
                error = PermanentError(
                    f"Bad or looping platform URL ({type(exc).__name__}); check the base URL",
                    platform=self.platform,
                )
            except MarketplaceError as exc:
                error = exc
            metrics.record_marketplace_call(self.platform, endpoint, metrics.call_outcome(error))
            delay = backoff_delay(attempt, self.tuning)
            if isinstance(error, RateLimitedError) and error.retry_after is not None:
                delay = max(delay, error.retry_after)
            if (
                not error.retryable
                or attempt >= max_attempts
                or delay > self.tuning.max_wait_seconds
            ):
                self._log_failure(error, attempt)
                raise error
            if isinstance(error, RateLimitedError):
                self.limiter.pause(delay)
            reason = "rate_limited" if isinstance(error, RateLimitedError) else "transient"
            self.events(
                "retry",
                {
                    "reason": reason,
                    "attempt": attempt,
                    "delaySeconds": round(delay, 3),
                    "error": str(error),
                },
            )
            await asyncio.sleep(delay)

    def _log_failure(self, error: MarketplaceError, attempts: int) -> None:
        logger.warning(
            "marketplace call failed",
            extra={
                "platform": self.platform,
                "error_class": type(error).__name__,
                "error_code": error.code,
                "platform_request_id": error.request_id,
                "attempts": attempts,
            },
        )
