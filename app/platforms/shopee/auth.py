"""Shopee Open Platform v2 request signing (reference §1.2-1.3).

The signed base string is `partner_id + api_path + timestamp`, followed by
`access_token + shop_id` for shop-level calls; HMAC-SHA256 keyed with the partner key, lowercase
hex. Only the API path is signed (never the host, a mount prefix, the query or the body).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Generator

import httpx

# Common parameters expire five minutes after `timestamp` (reference §1.3).
TIMESTAMP_TOLERANCE_SECONDS = 300


def sign(
    partner_key: str,
    partner_id: int,
    api_path: str,
    timestamp: int,
    access_token: str | None = None,
    shop_id: int | None = None,
) -> str:
    """The `sign` parameter; pass `access_token` and `shop_id` for shop-level calls."""
    base = f"{partner_id}{api_path}{timestamp}"
    if access_token is not None and shop_id is not None:
        base += f"{access_token}{shop_id}"
    return hmac.new(partner_key.encode(), base.encode(), hashlib.sha256).hexdigest()


def push_signature(partner_key: str, callback_url: str, body: bytes) -> str:
    """The `Authorization` header of a push: HMAC-SHA256(partner_key, url + '|' + body)."""
    message = callback_url.encode() + b"|" + body
    return hmac.new(partner_key.encode(), message, hashlib.sha256).hexdigest()


class ShopeeAuth(httpx.Auth):
    """Adds the common parameters to one call. The timestamp (and so the signature) is computed
    again on every attempt, so a retry after a long back-off is never sent with a stale sign."""

    def __init__(
        self,
        *,
        partner_id: int,
        partner_key: str,
        api_path: str,
        access_token: str | None = None,
        shop_id: int | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.partner_id = partner_id
        self._partner_key = partner_key
        self.api_path = api_path
        self._access_token = access_token
        self.shop_id = shop_id
        self._clock = clock

    def __repr__(self) -> str:
        return f"ShopeeAuth(partner_id={self.partner_id}, api_path={self.api_path!r})"

    def common_params(self) -> dict[str, str]:
        timestamp = int((self._clock or time.time)())
        params = {"partner_id": str(self.partner_id), "timestamp": str(timestamp)}
        if self._access_token is not None and self.shop_id is not None:
            params["access_token"] = self._access_token
            params["shop_id"] = str(self.shop_id)
        params["sign"] = sign(
            self._partner_key,
            self.partner_id,
            self.api_path,
            timestamp,
            self._access_token,
            self.shop_id,
        )
        return params

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.url = request.url.copy_merge_params(self.common_params())
        yield request
