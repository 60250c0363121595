"""The one place that knows every marketplace: its client class, its connect form, its
configuration from the settings, and the gateway the services use to reach it."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from app.platforms.authorize import ConnectFlow

from app.config import ClientTuning, Settings
from app.platforms.base import ClientConfig, MarketplaceClient, TokenStore
from app.platforms.connect_form import PlatformSpec
from app.platforms.facebook.connect_form import CONNECT_FORM as FACEBOOK_FORM
from app.platforms.http import EventSink, RateLimiter, ignore_events
from app.platforms.lazada.connect_form import CONNECT_FORM as LAZADA_FORM
from app.platforms.shopee.connect_form import CONNECT_FORM as SHOPEE_FORM
from app.platforms.tiktok.connect_form import CONNECT_FORM as TIKTOK_FORM
from app.platforms.types import Credentials, PlatformCode, ShopInfo

_CLIENT_CLASSES = {
    PlatformCode.SHOPEE: "app.platforms.shopee.client:ShopeeClient",
    PlatformCode.LAZADA: "app.platforms.lazada.client:LazadaClient",
    PlatformCode.FACEBOOK: "app.platforms.facebook.client:FacebookClient",
    PlatformCode.TIKTOK: "app.platforms.tiktok.client:TikTokClient",
}

_CONNECT_FLOWS = {
    PlatformCode.SHOPEE: "app.platforms.shopee.authorize:ShopeeConnectFlow",
    PlatformCode.LAZADA: "app.platforms.lazada.authorize:LazadaConnectFlow",
    PlatformCode.FACEBOOK: "app.platforms.facebook.authorize:FacebookConnectFlow",
    PlatformCode.TIKTOK: "app.platforms.tiktok.authorize:TikTokConnectFlow",
}

CONNECT_FORMS: dict[PlatformCode, PlatformSpec] = {
    PlatformCode.SHOPEE: SHOPEE_FORM,
    PlatformCode.LAZADA: LAZADA_FORM,
    PlatformCode.FACEBOOK: FACEBOOK_FORM,
    PlatformCode.TIKTOK: TIKTOK_FORM,
}

# The fields an operator's app supplies when a connection brings none of its own.
OPERATOR_APP_FIELDS = ("apiKey", "apiSecret")

# A connect request is interactive: fail fast instead of backing off for half a minute.
CONNECT_CHECK_TUNING = ClientTuning(max_attempts=2, backoff_base_seconds=0.2, timeout_seconds=15)


def operator_app(settings: Settings, platform: PlatformCode) -> tuple[str, str] | None:
    """The operator's own app credentials (api key, secret) on `platform`, when both are set."""
    key, secret = {
        PlatformCode.SHOPEE: (settings.shopee_partner_id, settings.shopee_partner_key),
        PlatformCode.LAZADA: (settings.lazada_app_key, settings.lazada_app_secret),
        PlatformCode.FACEBOOK: (settings.meta_app_id, settings.meta_app_secret),
        PlatformCode.TIKTOK: (settings.tiktok_app_key, settings.tiktok_app_secret),
    }[platform]
    if not key or secret is None or not secret.get_secret_value():
        return None
    return key, secret.get_secret_value()


def connect_form(platform: PlatformCode, settings: Settings | None) -> PlatformSpec:
    """The platform's connect form; with the operator's app configured, the app fields become
    optional (a connection without them uses the operator's, one with them overrides it)."""
    spec = CONNECT_FORMS[platform]
    if settings is None or operator_app(settings, platform) is None:
        return spec
    moved = tuple(f for f in spec.required if f.key in OPERATOR_APP_FIELDS)
    return replace(
        spec,
        required=tuple(f for f in spec.required if f.key not in OPERATOR_APP_FIELDS),
        optional=(*moved, *spec.optional),
    )


def connect_flow_class(platform: PlatformCode) -> type[ConnectFlow]:
    module_name, class_name = _CONNECT_FLOWS[platform].split(":")
    cls: type[ConnectFlow] = getattr(importlib.import_module(module_name), class_name)
    return cls


def shop_country(
    platform: PlatformCode, shop: ShopInfo, checked_in: str | None = None
) -> str | None:
    """The shop's country: as its check reports it, else the country whose host answered the
    check (`checked_in`, or the platform's default host's country); None where unknown."""
    flow = connect_flow_class(platform)
    found = flow.shop_country(shop) or checked_in or flow.default_country
    return found.upper() if found else None


def client_class(platform: PlatformCode) -> type[MarketplaceClient]:
    module_name, class_name = _CLIENT_CLASSES[platform].split(":")
    cls: type[MarketplaceClient] = getattr(importlib.import_module(module_name), class_name)
    return cls


def client_config(
    settings: Settings,
    platform: PlatformCode,
    tuning: ClientTuning | None = None,
    country: str | None = None,
) -> ClientConfig:
    """`country` is the connection's: a Lazada seller is served by its country's gateway."""
    tuning = tuning or settings.clients
    if platform is PlatformCode.SHOPEE:
        return ClientConfig(base_url=settings.shopee_base_url.rstrip("/"), tuning=tuning)
    if platform is PlatformCode.LAZADA:
        return ClientConfig(
            base_url=settings.lazada_country_url(country).rstrip("/"),
            auth_url=settings.lazada_auth_url.rstrip("/"),
            tuning=tuning,
        )
    if platform is PlatformCode.TIKTOK:
        return ClientConfig(
            base_url=settings.tiktok_base_url.rstrip("/"),
            auth_url=settings.tiktok_auth_url.rstrip("/"),
            tuning=tuning,
            options=settings.tiktok_options(),
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
    country: str | None = None,
) -> MarketplaceClient:
    return client_class(platform)(
        credentials,
        client_config(settings, platform, tuning, country),
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
        country: str | None = None,
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
            country=country,
        )
        async with client:
            shop = await client.check_shop()
            return shop, client.credentials
