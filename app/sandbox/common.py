"""What the three sandboxes share: fault injection and a token registry with expiry."""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse as StarletteJSONResponse
from starlette.responses import PlainTextResponse, Response


class JSONResponse(StarletteJSONResponse):
    """Starlette's JSON response encoded with orjson: the sandboxes serve large pages, and
    benchmarks should measure the service, not the sandbox's JSON encoder."""

    def render(self, content: object) -> bytes:
        return orjson.dumps(content)


@dataclass
class Faults:
    """Faults a sandbox injects, set by tests or `POST /_sandbox/faults`. Rates are 0..1."""

    latency_seconds: float = 0.0
    rate_limit_rate: float = 0.0
    server_error_rate: float = 0.0
    timeout_rate: float = 0.0
    timeout_seconds: float = 60.0
    malformed_rate: float = 0.0
    # Answer the next N calls with a rate-limit / 5xx / expired-token error, then behave.
    fail_next_rate_limit: int = 0
    fail_next_server_error: int = 0
    expire_tokens_next: int = 0
    # Stock pushes answer success but change nothing: what sellers are burned by.
    ignore_stock_updates: bool = False
    # Calls per second the sandbox serves before answering "rate limited" (0: no limit).
    max_calls_per_second: float = 0.0
    seed: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _window: list[float] = field(default_factory=list, repr=False)

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    def update(self, values: dict[str, float | int]) -> None:
        for key, value in values.items():
            if key.startswith("_") or not hasattr(self, key):
                raise KeyError(key)
            setattr(self, key, type(getattr(self, key))(value))
        if "seed" in values:
            self._rng.seed(self.seed)

    def roll(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    def over_call_rate(self) -> bool:
        if self.max_calls_per_second <= 0:
            return False
        now = time.monotonic()
        self._window = [t for t in self._window if now - t < 1.0]
        if len(self._window) >= self.max_calls_per_second:
            return True
        self._window.append(now)
        return False


async def apply_faults(
    faults: Faults,
    *,
    rate_limited: Callable[[], Response],
    server_error: Callable[[], Response],
) -> Response | None:
    """Latency, time-outs and injected errors, in the platform's own envelope. Returns the
    response to send instead of the real answer, or None to go on."""
    if faults.latency_seconds > 0:
        await asyncio.sleep(faults.latency_seconds)
    if faults.roll(faults.timeout_rate):
        await asyncio.sleep(faults.timeout_seconds)
    if faults.fail_next_rate_limit > 0:
        faults.fail_next_rate_limit -= 1
        return rate_limited()
    if faults.over_call_rate() or faults.roll(faults.rate_limit_rate):
        return rate_limited()
    if faults.fail_next_server_error > 0:
        faults.fail_next_server_error -= 1
        return server_error()
    if faults.roll(faults.server_error_rate):
        return server_error()
    if faults.roll(faults.malformed_rate):
        return PlainTextResponse('{"truncated": ', media_type="application/json")
    return None


@dataclass
class IssuedToken:
    value: str
    shop_key: str
    expires_at: float


@dataclass
class TokenRegistry:
    """Access tokens that expire and refresh tokens; `single_use_refresh` as on Shopee."""

    access_ttl_seconds: int = 4 * 3600
    refresh_ttl_seconds: int = 30 * 86400
    single_use_refresh: bool = True
    _access: dict[str, IssuedToken] = field(default_factory=dict)
    _refresh: dict[str, IssuedToken] = field(default_factory=dict)
    refreshes: int = 0

    def issue(
        self, shop_key: str, *, access: str | None = None, refresh: str | None = None
    ) -> tuple[IssuedToken, IssuedToken]:
        now = time.time()
        access_token = IssuedToken(
            access or secrets.token_hex(16), shop_key, now + self.access_ttl_seconds
        )
        refresh_token = IssuedToken(
            refresh or secrets.token_hex(16), shop_key, now + self.refresh_ttl_seconds
        )
        self._access[access_token.value] = access_token
        self._refresh[refresh_token.value] = refresh_token
        return access_token, refresh_token

    def check_access(self, value: str | None) -> IssuedToken | None:
        """The live token, or None when unknown or expired."""
        token = self._access.get(value or "")
        if token is None or token.expires_at <= time.time():
            return None
        return token

    def expire_all(self) -> None:
        for token in self._access.values():
            token.expires_at = 0

    def use_refresh(self, value: str | None) -> tuple[IssuedToken, IssuedToken] | None:
        token = self._refresh.get(value or "")
        if token is None or token.expires_at <= time.time():
            return None
        if self.single_use_refresh:
            del self._refresh[token.value]
        self.refreshes += 1
        return self.issue(token.shop_key)


async def read_json_or_none(request: Request) -> object:
    try:
        return await request.json()
    except ValueError:
        return None
