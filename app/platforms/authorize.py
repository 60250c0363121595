"""The one small interface of a marketplace's authorization flow: the page the seller is sent
to, the parameters the platform sends back, and the exchange of the returned code for tokens.
Each platform implements it in `app/platforms/<marketplace>/authorize.py`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx

from app.config import ClientTuning, Settings
from app.platforms.http import Classifier, PlatformTransport, single_attempt
from app.platforms.types import Credentials, PlatformCode, ShopInfo

# The seller's browser waits on the exchange: fail fast, and never retry (see `_call`).
EXCHANGE_TUNING = ClientTuning(max_attempts=1, timeout_seconds=15)


class ConsentRefused(Exception):
    """The seller declined (the platform sent an error, or no code)."""


@dataclass(frozen=True, slots=True)
class OperatorApp:
    api_key: str
    api_secret: str


@dataclass(frozen=True, slots=True)
class Callback:
    """What the platform sent the seller's browser back with."""

    code: str
    shop_id: str | None = None


@dataclass(slots=True)
class AuthorizedShop:
    """One shop the exchanged code grants: its credentials and, where known, its country."""

    credentials: Credentials
    country: str | None = None


class ConnectFlow(ABC):
    platform: ClassVar[PlatformCode]
    # The country of a shop checked without one (on the platform's default host), if any.
    default_country: ClassVar[str | None] = None

    def __init__(
        self, settings: Settings, app: OperatorApp, http_client: httpx.AsyncClient | None = None
    ) -> None:
        self.settings = settings
        self.app = app
        self.transport = PlatformTransport(
            platform=self.platform.value, tuning=EXCHANGE_TUNING, http_client=http_client
        )

    async def aclose(self) -> None:
        await self.transport.aclose()

    @abstractmethod
    def authorization_url(self, *, callback_url: str, state: str) -> str:
        """The page that asks the seller to approve the operator's app."""

    def parse_callback(self, query: Mapping[str, str]) -> Callback:
        code = (query.get("code") or "").strip()
        if query.get("error") or not code:
            raise ConsentRefused(query.get("error_description") or query.get("error") or "")
        return Callback(code=code, shop_id=(query.get("shop_id") or "").strip() or None)

    @abstractmethod
    async def exchange(self, callback: Callback, *, callback_url: str) -> list[AuthorizedShop]:
        """The shops (with tokens) the code grants. Raises MarketplaceError when refused."""

    @classmethod
    def shop_country(cls, shop: ShopInfo) -> str | None:
        """The shop's country as the shop check reports it (None where it does not)."""
        return None

    async def _call(
        self,
        method: str,
        url: str,
        classify: Classifier,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: Mapping[str, Any] | None = None,
        auth: httpx.Auth | None = None,
    ) -> dict[str, Any]:
        # A code works once: an exchange is never retried, or a retry after a lost answer
        # would spend the code twice and fail anyway.
        with single_attempt():
            return await self.transport.request(
                method,
                url,
                classify=classify,
                params=params,
                json_body=json_body,
                data=data,
                auth=auth,
            )
