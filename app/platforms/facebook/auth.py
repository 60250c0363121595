"""Graph API request signing: the Page access token plus `appsecret_proof`.

The token travels in the `Authorization: Bearer` header (Graph accepts it there as well as in
the `access_token` query parameter), so it never appears in a URL or an httpx log line.
`appsecret_proof` = lowercase hex HMAC-SHA256(key=app secret, msg=access token) goes in the query,
as Meta's SDKs send it; it is useless without the token.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Generator

import httpx


def appsecret_proof(access_token: str, app_secret: str) -> str:
    return hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()


def hub_signature_256(app_secret: str, body: bytes) -> str:
    """The value of a Graph webhook's `X-Hub-Signature-256` header for a raw body."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


class GraphAuth(httpx.Auth):
    def __init__(self, access_token: str, app_secret: str | None) -> None:
        self._token = access_token
        self._proof = appsecret_proof(access_token, app_secret) if app_secret else None

    def __repr__(self) -> str:
        return "GraphAuth(***)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        if self._proof is not None:
            request.url = request.url.copy_merge_params({"appsecret_proof": self._proof})
        yield request
