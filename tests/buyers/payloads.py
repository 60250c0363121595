"""Orders as each platform sends them (the sandboxes' renderers), for the buyer-data tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from app.platforms.facebook import mapping as meta_mapping
from app.platforms.lazada import mapping as lazada_mapping
from app.platforms.shopee import mapping as shopee_mapping
from app.platforms.shopee.client import ORDER_DETAIL_FIELDS
from app.platforms.types import NormalizedOrder
from app.sandbox import facebook as meta_sandbox
from app.sandbox import lazada as lazada_sandbox
from app.sandbox import shopee as shopee_sandbox
from app.sandbox.seed import SeededShop, SeedOrder

SHOP = SeededShop(
    seed="buyer-data",
    order_count=6,
    start=datetime(2026, 1, 1, tzinfo=UTC),
    end=datetime(2026, 2, 1, tzinfo=UTC),
)
_SHOPEE = shopee_sandbox.ShopeeShop(
    shop_id=1, partner_id=2, partner_key="k", seeded=SHOP, name="shop"
)
_META_PAGE = meta_sandbox.FacebookSandbox().add_page(seed="buyer-data")


def wire(value: Any) -> Any:
    return json.loads(json.dumps(value, ensure_ascii=False))


def shopee_raw(seed: SeedOrder) -> dict[str, Any]:
    payload: dict[str, Any] = wire(
        shopee_sandbox.render_order(seed, _SHOPEE, set(ORDER_DETAIL_FIELDS), True)
    )
    return payload


def lazada_raw(seed: SeedOrder) -> dict[str, Any]:
    """What map_order keeps as the raw payload: the order and its item rows."""
    return {
        "order": wire(lazada_sandbox.render_order(seed)),
        "items": wire(lazada_sandbox.render_items(seed)),
    }


def meta_raw(seed: SeedOrder) -> dict[str, Any]:
    payload: dict[str, Any] = wire(meta_sandbox.render_order(_META_PAGE, seed))
    return payload


RAW_PAYLOADS: dict[str, Callable[[SeedOrder], dict[str, Any]]] = {
    "shopee": shopee_raw,
    "lazada": lazada_raw,
    "facebook": meta_raw,
}


def normalized(platform: str, raw: dict[str, Any]) -> NormalizedOrder:
    if platform == "shopee":
        return shopee_mapping.map_order(raw)
    if platform == "lazada":
        return lazada_mapping.map_order(raw["order"], raw["items"])
    return meta_mapping.map_order(raw)


def buyer_values(seed: SeedOrder) -> list[str]:
    """What identifies the seeded buyer: names, phone, e-mail and street."""
    return [
        seed.buyer_first_name,
        seed.buyer_last_name,
        seed.buyer_phone,
        seed.buyer_email,
        seed.address.line1,
    ]


def leaks(value: Any, secrets: list[str]) -> list[str]:
    text = json.dumps(value, ensure_ascii=False)
    return [secret for secret in secrets if secret and secret in text]
