"""The one place that knows every marketplace: its client class, its connect form, its
configuration from the settings, and the gateway the services use to reach it."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import httpx

from app.config import ClientTuning, Settings
from app.platforms.base import ClientConfig, MarketplaceClient, TokenStore
from app.platforms.connect_form import PlatformSpec
from app.platforms.facebook.connect_form import CONNECT_FORM as FACEBOOK_FORM
from app.platforms.http import EventSink, RateLimiter, ignore_events
from app.platforms.lazada.connect_form import CONNECT_FORM as LAZADA_FORM
from app.platforms.shopee.connect_form import CONNECT_FORM as SHOPEE_FORM
from app.platforms.types import Credentials, PlatformCode, ShopInfo

_CLIENT_CLASSES = {
    PlatformCode.SHOPEE: "app.platforms.shopee.client:ShopeeClient",
    PlatformCode.LAZADA: "app.platforms.lazada.client:LazadaClient",
    PlatformCode.FACEBOOK: "app.platforms.facebook.client:FacebookClient",
}

CONNECT_FORMS: dict[PlatformCode, PlatformSpec] = {
    PlatformCode.SHOPEE: SHOPEE_FORM,
    PlatformCode.LAZADA: LAZADA_FORM,
    PlatformCode.FACEBOOK: FACEBOOK_FORM,
}

# A connect request is interactive: fail fast instead of backing off for half a minute.
CONNECT_CHECK_TUNING = ClientTuning(max_attempts=2, backoff_base_seconds=0.2, timeout_seconds=15)


def client_class(platform: PlatformCode) -> type[MarketplaceClient]:
    module_name, class_name = _CLIENT_CLASSES[platform].split(":")
    cls: type[MarketplaceClient] = getattr(importlib.import_module(module_name), class_name)
    return cls


def client_config(
    settings: Settings, platform: PlatformCode, tuning: ClientTuning | None = None
) -> ClientConfig:
    tuning = tuning or settings.clients
    if platform is PlatformCode.SHOPEE:
        return ClientConfig(base_url=settings.shopee_base_url.rstrip("/"), tuning=tuning)
    if platform is PlatformCode.LAZADA:
        return ClientConfig(
            base_url=settings.lazada_base_url.rstrip("/"),
            auth_url=settings.lazada_auth_url.rstrip("/"),
            tuning=tuning,
        )
    return ClientConfig(base_url=settings.facebook_graph_url.rstrip("/"), tuning=tuning)


def build_client(
    platform: PlatformCode,
    credentials: Credentials,
    settings: Settings,
    *,
    tuning: ClientTuning | None = None,
    token_store: TokenStore | None = None,
    events: EventSink = ignore_events,
    http_client: httpx.AsyncClient | None = None,
    limiter: RateLimiter | None = None,
) -> MarketplaceClient:
    return client_class(platform)(
        credentials,
        client_config(settings, platform, tuning),
        token_store=token_store,
        events=events,
        http_client=http_client,
        limiter=limiter,
    )


@dataclass(slots=True)
class PlatformGateway:
    """How services reach marketplaces outside a sync: settings and a shared HTTP client."""

    settings: Settings
    http_client: httpx.AsyncClient | None = None

    async def check_shop(
        self,
        platform: PlatformCode,
        credentials: Credentials,
        *,
        token_store: TokenStore | None = None,
    ) -> tuple[ShopInfo, Credentials]:
        """The shop the credentials belong to (as the platform reports it), and the
        credentials after the check: a check that had to refresh an expired token returns the
        new pair, which the caller must store (Shopee refresh tokens work once)."""
        client = build_client(
            platform,
            credentials,
            self.settings,
            tuning=CONNECT_CHECK_TUNING,
            http_client=self.http_client,
            token_store=token_store,
        )
        async with client:
            shop = await client.check_shop()
            return shop, client.credentials
