"""Normalized types: the only shapes the rest of the app sees of a marketplace."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from app.money import in_minor_units


class PlatformCode(StrEnum):
    SHOPEE = "shopee"
    LAZADA = "lazada"
    FACEBOOK = "facebook"
    TIKTOK = "tiktok"


class OrderStatus(StrEnum):
    """One status set for every marketplace; each platform's `mapping.py` documents its table."""

    UNPAID = "unpaid"  # placed, payment not yet received (prepaid orders)
    PENDING = "pending"  # confirmed (paid or COD), seller has not arranged shipment yet
    READY_TO_SHIP = "ready_to_ship"  # packed / shipment arranged, waiting for pick-up
    SHIPPED = "shipped"  # handed to the carrier
    DELIVERED = "delivered"  # carrier reports delivery; buyer may still return
    COMPLETED = "completed"  # final, funds released
    CANCELLING = "cancelling"  # buyer or seller asked to cancel; not final yet
    CANCELLED = "cancelled"
    RETURNED = "returned"  # return or refund after delivery
    FAILED = "failed"  # delivery failed, lost or damaged by the carrier
    UNKNOWN = "unknown"  # a status this version does not know; the raw status is kept


@dataclass(slots=True)
class Address:
    name: str | None = None
    phone: str | None = None
    line1: str | None = None
    line2: str | None = None
    district: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None
    full_address: str | None = None


@dataclass(slots=True)
class OrderItem:
    sku: str | None
    name: str
    quantity: int
    unit_price: Decimal
    discount: Decimal = Decimal("0")
    variation: str | None = None
    external_item_id: str | None = None
    external_product_id: str | None = None


@dataclass(slots=True)
class NormalizedOrder:
    external_order_id: str
    status: OrderStatus
    raw_status: str
    currency: str
    created_at: datetime
    updated_at: datetime
    subtotal: Decimal
    shipping_fee: Decimal
    discount: Decimal
    total: Decimal
    items: list[OrderItem] = field(default_factory=list)
    buyer_name: str | None = None
    buyer_phone: str | None = None
    buyer_email: str | None = None
    shipping_address: Address | None = None
    payment_method: str | None = None
    is_cod: bool = False
    paid_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Every amount in exactly the currency's minor units (INTERFACE.md), whatever digits the
        # payload or a computed zero carried, so equal amounts store, hash and render alike.
        currency = self.currency
        self.subtotal = in_minor_units(self.subtotal, currency)
        self.shipping_fee = in_minor_units(self.shipping_fee, currency)
        self.discount = in_minor_units(self.discount, currency)
        self.total = in_minor_units(self.total, currency)
        for item in self.items:
            item.unit_price = in_minor_units(item.unit_price, currency)
            item.discount = in_minor_units(item.discount, currency)


@dataclass(slots=True)
class ProductVariation:
    external_variation_id: str | None
    sku: str | None
    name: str | None
    price: Decimal | None
    stock: int | None


@dataclass(slots=True)
class NormalizedProduct:
    external_product_id: str
    name: str
    status: str
    currency: str | None
    updated_at: datetime | None
    variations: list[ProductVariation] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for variation in self.variations:
            if variation.price is not None:
                variation.price = in_minor_units(variation.price, self.currency)


@dataclass(slots=True)
class StockUpdate:
    """Set the sellable stock of one SKU; ids come from the product the SKU was listed under."""

    sku: str
    quantity: int
    external_product_id: str | None = None
    external_variation_id: str | None = None


@dataclass(slots=True)
class ShopInfo:
    shop_id: str
    name: str | None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class TokenPair:
    access_token: str
    refresh_token: str | None
    access_expires_at: datetime | None
    refresh_expires_at: datetime | None = None


@dataclass(slots=True)
class Credentials:
    """Decrypted credentials of one connection; never logged, never serialized to a response."""

    shop_id: str
    api_key: str
    api_secret: str
    access_token: str
    refresh_token: str | None = None
    access_expires_at: datetime | None = None
    refresh_expires_at: datetime | None = None
    shop_cipher: str | None = None  # TikTok Shop only

    def __repr__(self) -> str:  # keeps secrets out of tracebacks and logs
        return f"Credentials(shop_id={self.shop_id!r}, secrets=***)"
