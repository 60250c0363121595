"""TikTok Shop request signing (reference fulfillment-and-tiktok.md §4.3) and push signatures.

API calls: every query parameter except `sign` and `access_token`, sorted by key, concatenated
as key+value after the request path; the exact body bytes appended (unless multipart); wrapped
in the app secret on both sides; `sign` = lowercase hex HMAC-SHA256 keyed with the app secret.
The access token travels in the `x-tts-access-token` header, never in the query. `timestamp`
is Unix seconds and must lie in [now - 5 min, now + 30 s].

Pushes (§4.9, third-party only): `Authorization` = lowercase hex HMAC-SHA256(app secret,
app key + raw body); the prefix is a setting (TIKTOK_WEBHOOK_SIGN_PREFIX).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Generator, Mapping

import httpx

ACCESS_TOKEN_HEADER = "x-tts-access-token"
# Parameters never signed: the signature itself and the token (also when a caller puts the
# header name in the query, as TTS-PHP guards against).
UNSIGNED = frozenset({"sign", "access_token", ACCESS_TOKEN_HEADER})
TIMESTAMP_PAST_SECONDS = 300
TIMESTAMP_FUTURE_SECONDS = 30


def sign(path: str, params: Mapping[str, str], app_secret: str, body: bytes = b"") -> str:
    """The `sign` query parameter of a call to `path` with query `params` and `body`."""
    base = path + "".join(f"{key}{params[key]}" for key in sorted(params) if key not in UNSIGNED)
    wrapped = app_secret.encode() + base.encode() + body + app_secret.encode()
    return hmac.new(app_secret.encode(), wrapped, hashlib.sha256).hexdigest()


def push_signature(app_key: str, app_secret: str, raw_body: bytes, prefix: str = "app_key") -> str:
    lead = app_key.encode() if prefix == "app_key" else b""
    return hmac.new(app_secret.encode(), lead + raw_body, hashlib.sha256).hexdigest()


def verify_push(
    app_key: str, app_secret: str, raw_body: bytes, header: str | None, prefix: str = "app_key"
) -> bool:
    if not header:
        return False
    expected = push_signature(app_key, app_secret, raw_body, prefix)
    return hmac.compare_digest(expected.encode(), header.strip().lower().encode())


def timestamp_in_window(stamp: int, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    return now - TIMESTAMP_PAST_SECONDS <= stamp <= now + TIMESTAMP_FUTURE_SECONDS


def now_seconds() -> str:
    return str(int(time.time()))


class TikTokAuth(httpx.Auth):
    """Adds `app_key`, `timestamp` and `sign` (and the token header) to one call. httpx runs
    `auth_flow` for every send, so each retry is signed afresh with a new timestamp."""

    def __init__(
        self,
        app_key: str,
        app_secret: str,
        access_token: str | None = None,
        *,
        clock: Callable[[], str] = now_seconds,
    ) -> None:
        self.app_key = app_key
        self._secret = app_secret
        self._access_token = access_token
        self._clock = clock

    def __repr__(self) -> str:
        return f"TikTokAuth(app_key={self.app_key!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        query = {k: v for k, v in request.url.params.multi_items() if k not in UNSIGNED}
        query.update(app_key=self.app_key, timestamp=self._clock())
        multipart = request.headers.get("content-type", "").startswith("multipart/form-data")
        body = b"" if multipart else request.content
        query["sign"] = sign(request.url.path, query, self._secret, body)
        request.url = request.url.copy_with(params=query)
        if self._access_token:
            request.headers[ACCESS_TOKEN_HEADER] = self._access_token
        yield request
