"""TikTok Shop payloads to normalized types, and TikTok's answers to failure classes.

Order status (reference §4.5; `order_status` of Get Order List, `CANCEL` as webhook type 1
spells it):

    TikTok status        OrderStatus     note
    -------------------  --------------  ---------------------------------------------------
    UNPAID               UNPAID
    ON_HOLD              PENDING         accepted; the buyer may still cancel without approval
    AWAITING_SHIPMENT    PENDING         the seller has not arranged shipment yet
    PARTIALLY_SHIPPING   READY_TO_SHIP   some packages left, the rest wait
    AWAITING_COLLECTION  READY_TO_SHIP   shipment arranged, waiting for the carrier
    IN_TRANSIT           SHIPPED
    DELIVERED            DELIVERED
    COMPLETED            COMPLETED       no more returns or refunds
    CANCELLED / CANCEL   CANCELLED
    anything else        UNKNOWN         raw status kept

An order with `is_buyer_request_cancel` true that is not cancelled yet is CANCELLING.

Money: `payment` amounts are decimal strings; the buyer pays `total_amount`; `sub_total` is the
items after seller and platform discounts; `shipping_fee` what the buyer pays for shipping.
Line items are one row per unit (no quantity field): rows of one SKU and sale price are folded
into one item with a quantity.

Errors (envelope `{code, message, request_id, data}`, code 0 = success; §4.4):

    answer                                      class
    ------------------------------------------  ------------------------------------------
    HTTP 429, 36009002                          RateLimitedError (back-off, Retry-After)
    105002 (expired token), 36009004 naming     AuthError: refresh once, then re-authorize
      the access token, HTTP 401
    106001 (invalid sign)                       TikTokSignatureError: a clear connection
                                                error (app secret wrong), never retried
    HTTP 5xx / 503, 36009003, 36009007          TransientError
    any other code                              PermanentError with TikTok's message
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from app.platforms.errors import (
    AuthError,
    MarketplaceError,
    PermanentError,
    RateLimitedError,
    TransientError,
)
from app.platforms.http import decode_json, parse_retry_after
from app.platforms.types import (
    Address,
    NormalizedOrder,
    NormalizedProduct,
    OrderItem,
    OrderStatus,
    PlatformCode,
    ProductVariation,
)
from app.platforms.values import MappingError, money_from, text_or_none

PLATFORM = PlatformCode.TIKTOK.value
DEFAULT_CURRENCY = "THB"

EXPIRED_TOKEN = "105002"
BAD_SIGN = "106001"
RATE_LIMITED = "36009002"
AUTH_FAILED = "36009004"  # missing sign / invalid token / app key / timestamp / cipher
TRANSIENT_CODES = frozenset({"36009003", "36009007"})

STATUS_MAP: dict[str, OrderStatus] = {
    "UNPAID": OrderStatus.UNPAID,
    "ON_HOLD": OrderStatus.PENDING,
    "AWAITING_SHIPMENT": OrderStatus.PENDING,
    "PARTIALLY_SHIPPING": OrderStatus.READY_TO_SHIP,
    "AWAITING_COLLECTION": OrderStatus.READY_TO_SHIP,
    "IN_TRANSIT": OrderStatus.SHIPPED,
    "DELIVERED": OrderStatus.DELIVERED,
    "COMPLETED": OrderStatus.COMPLETED,
    "CANCELLED": OrderStatus.CANCELLED,
    "CANCEL": OrderStatus.CANCELLED,
}


class TikTokSignatureError(PermanentError):
    """106001: TikTok could not verify the request's signature: the app secret (or key) of
    the connection is wrong. No retry helps; the seller or operator must fix the app."""


class TikTokPermanentError(PermanentError):
    """A permanent failure carrying TikTok's `data` (per-item errors) when there is one."""

    def __init__(self, message: str, *, data: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.data = data


def error_for(
    payload: Mapping[str, Any], status_code: int, retry_after: float | None = None
) -> MarketplaceError:
    code = str(payload.get("code") if payload.get("code") is not None else "")
    message = str(payload.get("message") or f"HTTP {status_code} from TikTok Shop")
    request_id = payload.get("request_id")
    kw: dict[str, Any] = {
        "platform": PLATFORM,
        "code": code or None,
        "status_code": status_code,
        "request_id": str(request_id) if request_id is not None else None,
    }
    if status_code == 429 or code == RATE_LIMITED:
        return RateLimitedError(message, retry_after=retry_after, **kw)
    if code == BAD_SIGN:
        return TikTokSignatureError(
            f"TikTok Shop rejected the request signature ({message}); check the app key and "
            "app secret of this connection",
            **kw,
        )
    if code == EXPIRED_TOKEN or status_code == 401:
        return AuthError(message, **kw)
    if code == AUTH_FAILED and "token" in message.lower():
        return AuthError(message, **kw)
    if status_code >= 500 or code in TRANSIENT_CODES:
        return TransientError(message, **kw)
    return TikTokPermanentError(message, data=payload.get("data"), **kw)


def classify_response(response: httpx.Response) -> dict[str, Any]:
    """The `data` envelope's payload of a success, or the right `MarketplaceError` raised."""
    status = response.status_code
    retry_after = parse_retry_after(response)
    try:
        payload = decode_json(response, PLATFORM)
    except TransientError as exc:
        if status == 429:
            raise RateLimitedError(
                "Rate limited by TikTok Shop (HTTP 429)",
                retry_after=retry_after,
                platform=PLATFORM,
                status_code=status,
            ) from exc
        if 400 <= status < 500:
            raise PermanentError(
                f"TikTok Shop answered HTTP {status}", platform=PLATFORM, status_code=status
            ) from exc
        raise
    code = payload.get("code")
    if status < 400 and code is not None and str(code) == "0":
        return payload
    raise error_for(payload, status, retry_after)


def data_of(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    data = payload.get("data")
    return data if isinstance(data, Mapping) else {}


# --- values ------------------------------------------------------------------------------


def money(value: Any, currency: str) -> Decimal:
    if value is None or value == "":
        value = 0
    return money_from(value, currency)


def parse_time(value: Any) -> datetime:
    """TikTok times are Unix seconds (ints)."""
    if isinstance(value, bool) or value is None:
        raise MappingError(f"not a time: {value!r}")
    try:
        number = int(value)
        return datetime.fromtimestamp(number / 1000 if number > 10**11 else number, UTC)
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise MappingError(f"not a time: {value!r}") from exc


def order_id_of(order: Mapping[str, Any]) -> str:
    value = order.get("id")
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
        raise MappingError("order without id")
    return str(value).strip()


def map_status(raw: str, *, cancel_requested: bool = False) -> OrderStatus:
    status = STATUS_MAP.get(raw.strip().upper(), OrderStatus.UNKNOWN)
    if cancel_requested and status not in (OrderStatus.CANCELLED, OrderStatus.UNKNOWN):
        return OrderStatus.CANCELLING
    return status


# --- orders ------------------------------------------------------------------------------


def group_items(rows: Sequence[Mapping[str, Any]], currency: str) -> list[OrderItem]:
    """One `OrderItem` per SKU and sale price: TikTok sends one line per unit."""
    grouped: dict[tuple[str, Decimal], OrderItem] = {}
    for row in rows:
        sku_id = text_or_none(row.get("sku_id")) or ""
        original = money(row.get("original_price"), currency)
        sale = money(row.get("sale_price"), currency)
        key = (sku_id, sale.normalize())
        unit_discount = max(Decimal("0"), original - sale)
        item = grouped.get(key)
        if item is None:
            grouped[key] = OrderItem(
                sku=text_or_none(row.get("seller_sku")) or sku_id or None,
                name=text_or_none(row.get("product_name")) or sku_id,
                quantity=1,
                unit_price=original if original > 0 else sale,
                discount=unit_discount,
                variation=text_or_none(row.get("sku_name")),
                external_item_id=text_or_none(row.get("id")),
                external_product_id=text_or_none(row.get("product_id")),
            )
        else:
            item.quantity += 1
            item.discount += unit_discount
    return list(grouped.values())


def _address(raw: Any) -> Address | None:
    if not isinstance(raw, Mapping):
        return None
    districts = raw.get("district_info")
    levels: dict[str, str] = {}
    for entry in districts if isinstance(districts, list) else []:
        if isinstance(entry, Mapping) and entry.get("address_level_name"):
            levels[str(entry.get("address_level_name")).lower()] = str(
                entry.get("address_name") or ""
            )
    return Address(
        name=text_or_none(raw.get("name")),
        phone=text_or_none(raw.get("phone_number")),
        line1=text_or_none(raw.get("address_line1")),
        line2=text_or_none(raw.get("address_line2")),
        district=levels.get("district"),
        city=levels.get("city") or levels.get("district"),
        state=levels.get("province") or levels.get("state"),
        postal_code=text_or_none(raw.get("postal_code")),
        country=text_or_none(raw.get("region_code")),
        full_address=text_or_none(raw.get("full_address")),
    )


def map_order(order: Mapping[str, Any]) -> NormalizedOrder:
    """One order object of Search Orders / Get Order Detail (a full detail object)."""
    if not isinstance(order, Mapping):
        raise MappingError("order is not an object")
    external_id = order_id_of(order)
    raw_status = str(order.get("status") or "")
    payment = order.get("payment")
    payment = payment if isinstance(payment, Mapping) else {}
    currency = text_or_none(payment.get("currency")) or DEFAULT_CURRENCY
    lines = order.get("line_items")
    rows = [r for r in lines if isinstance(r, Mapping)] if isinstance(lines, list) else []
    items = group_items(rows, currency)
    shipping_fee = money(payment.get("shipping_fee"), currency)
    total = money(payment.get("total_amount"), currency)
    if payment.get("sub_total") not in (None, ""):
        subtotal = money(payment.get("sub_total"), currency)
    else:
        subtotal = sum((i.unit_price * i.quantity - i.discount for i in items), Decimal("0"))
    item_discounts = sum((i.discount for i in items), Decimal("0"))
    seller = money(payment.get("seller_discount"), currency)
    platform = money(payment.get("platform_discount"), currency)
    # Order-level discount: what the seller and platform gave beyond the items' own markdowns.
    discount = max(Decimal("0"), seller + platform - item_discounts)
    address = _address(order.get("recipient_address"))
    paid = order.get("paid_time")
    method = text_or_none(order.get("payment_method_name"))
    return NormalizedOrder(
        external_order_id=external_id,
        status=map_status(raw_status, cancel_requested=bool(order.get("is_buyer_request_cancel"))),
        raw_status=raw_status,
        currency=currency,
        created_at=parse_time(order.get("create_time")),
        updated_at=parse_time(order.get("update_time")),
        subtotal=subtotal,
        shipping_fee=shipping_fee,
        discount=discount,
        total=total,
        items=items,
        buyer_name=address.name if address else None,
        buyer_phone=address.phone if address else None,
        buyer_email=text_or_none(order.get("buyer_email")),
        shipping_address=address,
        payment_method=method,
        is_cod=bool(order.get("is_cod")),
        paid_at=parse_time(paid) if paid not in (None, "", 0) else None,
        raw=dict(order),
    )


# --- products ----------------------------------------------------------------------------


def sku_stock(sku: Mapping[str, Any]) -> int | None:
    inventory = sku.get("inventory")
    if not isinstance(inventory, list):
        return None
    return sum(int(w.get("quantity") or 0) for w in inventory if isinstance(w, Mapping))


def map_product(product: Mapping[str, Any]) -> NormalizedProduct:
    if not isinstance(product, Mapping) or product.get("id") in (None, ""):
        raise MappingError("product without id")
    skus = product.get("skus")
    variations = []
    currency = DEFAULT_CURRENCY
    for sku in skus if isinstance(skus, list) else []:
        if not isinstance(sku, Mapping):
            continue
        price = sku.get("price")
        price = price if isinstance(price, Mapping) else {}
        currency = text_or_none(price.get("currency")) or currency
        sale = price.get("sale_price") or price.get("tax_exclusive_price")
        attributes = sku.get("sales_attributes")
        name = None
        if isinstance(attributes, list):
            name = (
                "/".join(
                    str(a.get("value_name"))
                    for a in attributes
                    if isinstance(a, Mapping) and a.get("value_name")
                )
                or None
            )
        variations.append(
            ProductVariation(
                external_variation_id=text_or_none(sku.get("id")),
                sku=text_or_none(sku.get("seller_sku")),
                name=name,
                price=money(sale, currency) if sale not in (None, "") else None,
                stock=sku_stock(sku),
            )
        )
    updated = product.get("update_time")
    return NormalizedProduct(
        external_product_id=str(product["id"]),
        name=text_or_none(product.get("title")) or "",
        status=str(product.get("status") or ""),
        currency=currency,
        updated_at=parse_time(updated) if updated not in (None, "") else None,
        variations=variations,
        raw=dict(product),
    )


# --- buyer data ----------------------------------------------------------------------------

BUYER_FIELDS = frozenset(
    {"recipient_address", "buyer_email", "buyer_message", "user_id", "cpf", "cpf_name"}
)


def erase_buyer_data(raw: dict[str, Any]) -> dict[str, Any]:
    """The stored order without its buyer fields; everything else is kept as received."""
    return {key: value for key, value in raw.items() if key not in BUYER_FIELDS}
