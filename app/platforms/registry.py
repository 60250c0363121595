"""Builds the right client for a platform code from the settings; the only place that does."""

from __future__ import annotations

import importlib
from typing import Any

from app.config import ClientTuning, Settings
from app.platforms.base import ClientConfig, MarketplaceClient
from app.platforms.types import Credentials, PlatformCode

_CLIENT_CLASSES = {
    PlatformCode.SHOPEE: "app.platforms.shopee.client:ShopeeClient",
    PlatformCode.LAZADA: "app.platforms.lazada.client:LazadaClient",
    PlatformCode.FACEBOOK: "app.platforms.facebook.client:FacebookClient",
}


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
    **kwargs: Any,
) -> MarketplaceClient:
    return client_class(platform)(credentials, client_config(settings, platform, tuning), **kwargs)
