"""Shopee v2 payloads to normalized types, and Shopee's answers to the failure classes.

Order status table (every status in reference §1.5; anything else maps to UNKNOWN and the raw
status is kept):

| Shopee `order_status` | OrderStatus   | why                                                    |
|-----------------------|---------------|--------------------------------------------------------|
| UNPAID                | UNPAID        | placed, buyer has not paid                             |
| PENDING               | PENDING       | paid, under Shopee's internal checks (`pending_terms`) |
| INVOICE_PENDING       | PENDING       | paid, waiting for the seller's invoice (BR)            |
| READY_TO_SHIP         | PENDING       | paid or COD; seller has not arranged shipment yet      |
| PROCESSED             | READY_TO_SHIP | shipment arranged (tracking number), awaiting pickup   |
| RETRY_SHIP            | FAILED        | the shipment failed; the seller must arrange it again  |
| SHIPPED               | SHIPPED       | handed to the carrier                                  |
| TO_CONFIRM_RECEIVE    | DELIVERED     | delivered; buyer may still confirm or ask to return    |
| COMPLETED             | COMPLETED     | final, funds released                                  |
| IN_CANCEL             | CANCELLING    | cancellation requested, not decided yet                |
| CANCELLED             | CANCELLED     |                                                        |
| TO_RETURN             | RETURNED      | return or refund requested after delivery              |

Error table (`error` of the envelope; a module prefix such as `common.` is ignored):

| class               | codes                                                                 |
|---------------------|-----------------------------------------------------------------------|
| RateLimitedError    | HTTP 429, `error_rate_limit`, `error_limit` (daily quota, 00:00 UTC+8) |
| TransientError      | HTTP 5xx, malformed JSON, `error_server`, `error_network`,            |
|                     | `error_inner`, `error_system_busy`, `error_busy`,                     |
|                     | `error_get_shop_fail`, `error_auth` "System error, please try later." |
| AuthError           | `error_auth` (token messages), `invalid_acceess_token` (sic),         |
|                     | `invalid_access_token`, any message "Invalid access_token"            |
| ReauthRequiredError | `refresh_token_expired`, `error_shop_refresh_token`,                  |
|                     | `shop_access_expired`, `invalid_refresh_token`, `shop_no_linked`,     |
|                     | `partner_shop_no_link`, `shop_banned`, `error_partner_key_expired`    |
| PermanentError      | everything else, with Shopee's message (`error_param`, `error_sign`,  |
|                     | `error_permission`, `error_auth` about permissions or stock, ...)     |
"""

from __future__ import annotations

import contextlib
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
    ReauthRequiredError,
    TransientError,
)
from app.platforms.http import decode_json, parse_retry_after
from app.platforms.types import (
    Address,
    NormalizedOrder,
    NormalizedProduct,
    OrderItem,
    OrderStatus,
    ProductVariation,
)
from app.platforms.values import MappingError, money_from, text_or_none, without_trailing_parts

PLATFORM = "shopee"

ORDER_STATUSES: dict[str, OrderStatus] = {
    "UNPAID": OrderStatus.UNPAID,
    "PENDING": OrderStatus.PENDING,
    "INVOICE_PENDING": OrderStatus.PENDING,
    "READY_TO_SHIP": OrderStatus.PENDING,
    "PROCESSED": OrderStatus.READY_TO_SHIP,
    "RETRY_SHIP": OrderStatus.FAILED,
    "SHIPPED": OrderStatus.SHIPPED,
    "TO_CONFIRM_RECEIVE": OrderStatus.DELIVERED,
    "COMPLETED": OrderStatus.COMPLETED,
    "IN_CANCEL": OrderStatus.CANCELLING,
    "CANCELLED": OrderStatus.CANCELLED,
    "TO_RETURN": OrderStatus.RETURNED,
}

RATE_LIMIT_CODES = frozenset({"error_rate_limit", "error_limit"})
TRANSIENT_CODES = frozenset(
    {
        "error_server",
        "error_network",
        "error_inner",
        "error_system_busy",
        "error_busy",
        "error_get_shop_fail",
    }
)
AUTH_CODES = frozenset({"error_auth", "invalid_acceess_token", "invalid_access_token"})
REAUTH_CODES = frozenset(
    {
        "refresh_token_expired",
        "error_shop_refresh_token",
        "shop_access_expired",
        "invalid_refresh_token",
        "shop_no_linked",
        "partner_shop_no_link",
        "shop_banned",
        "error_partner_key_expired",
    }
)
# Shopee reuses `error_auth` for business rules (stock, warehouses, holiday mode) and missing
# permissions; a token refresh cannot fix those.
_AUTH_NOT_TOKEN_HINTS = (
    "permission",
    "stock",
    "location_id",
    "holiday",
    "dts",
    "partner_id is invalid",
    "partner_id or shopid",
    "app is deleted",
)
_AUTH_TRANSIENT_HINTS = ("system error",)


OrderMappingError = MappingError


def error_code(raw: object) -> str:
    """`common.error_auth` and `error_auth` are the same code."""
    code = str(raw or "").strip()
    return code.rsplit(".", 1)[-1] if "." in code else code


def error_for(
    raw_code: str,
    message: str,
    *,
    status_code: int | None = None,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> MarketplaceError:
    """The failure class of one Shopee error, with Shopee's own message."""
    code = error_code(raw_code)
    text = message or code or "Shopee returned an error"
    kwargs: dict[str, Any] = {
        "platform": PLATFORM,
        "code": raw_code or None,
        "status_code": status_code,
        "request_id": request_id,
    }
    lowered = text.lower()
    if code in RATE_LIMIT_CODES:
        if code == "error_limit":
            # The daily quota resets at midnight UTC+8; a caller should not sleep that long.
            return RateLimitedError(text, retry_after=None, **kwargs)
        return RateLimitedError(text, retry_after=retry_after, **kwargs)
    if code in TRANSIENT_CODES:
        return TransientError(text, **kwargs)
    if code in REAUTH_CODES:
        return ReauthRequiredError(text, **kwargs)
    if "invalid access_token" in lowered or code in AUTH_CODES - {"error_auth"}:
        return AuthError(text, **kwargs)
    if code == "error_auth":
        if any(hint in lowered for hint in _AUTH_TRANSIENT_HINTS):
            return TransientError(text, **kwargs)
        if any(hint in lowered for hint in _AUTH_NOT_TOKEN_HINTS):
            return PermanentError(text, **kwargs)
        return AuthError(text, **kwargs)
    return PermanentError(text, **kwargs)


def classify_response(response: httpx.Response) -> dict[str, Any]:
    """The envelope of a successful call, or the right MarketplaceError."""
    status = response.status_code
    retry_after = parse_retry_after(response)
    if status >= 500:
        request_id = None
        try:
            body = response.json()
            if isinstance(body, dict):
                request_id = body.get("request_id")
        except ValueError:
            pass
        raise TransientError(
            f"Shopee answered HTTP {status}",
            platform=PLATFORM,
            status_code=status,
            request_id=request_id,
        )
    if status == 429:
        payload: dict[str, Any] = {}
        with contextlib.suppress(TransientError):
            payload = decode_json(response, PLATFORM)
        raise RateLimitedError(
            str(payload.get("message") or "Too many requests (HTTP 429)"),
            retry_after=retry_after,
            platform=PLATFORM,
            code=str(payload.get("error") or "") or None,
            status_code=status,
            request_id=payload.get("request_id"),
        )
    try:
        payload = decode_json(response, PLATFORM)
    except TransientError:
        if status >= 400:
            error_class = TransientError if status == 408 else PermanentError
            raise error_class(
                f"Shopee answered HTTP {status}", platform=PLATFORM, status_code=status
            ) from None
        raise
    code = payload.get("error")
    if code:
        raise error_for(
            str(code),
            str(payload.get("message") or ""),
            status_code=status,
            request_id=payload.get("request_id"),
            retry_after=retry_after,
        )
    if status >= 400:
        raise PermanentError(
            str(payload.get("message") or f"Shopee answered HTTP {status}"),
            platform=PLATFORM,
            status_code=status,
            request_id=payload.get("request_id"),
        )
    return payload


# --- field helpers ---------------------------------------------------------------------------


def money(value: object, currency: str | None, field: str = "amount") -> Decimal:
    """Shopee sends amounts as JSON floats (10780.2); in the currency's minor units here."""
    return money_from(value, currency, field)


def optional_money(value: object, currency: str | None, field: str) -> Decimal | None:
    return None if value is None or value == "" else money(value, currency, field)


def timestamp(value: object, field: str) -> datetime:
    """UTC datetime from unix seconds."""
    if isinstance(value, bool):
        raise OrderMappingError(f"{field} is not a timestamp")
    try:
        seconds = int(value) if isinstance(value, float) and value.is_integer() else int(str(value))
        return datetime.fromtimestamp(seconds, UTC)
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise OrderMappingError(f"{field} is not a timestamp: {value!r}") from exc


def optional_timestamp(value: object, field: str) -> datetime | None:
    if value in (None, "", 0, "0"):
        return None
    return timestamp(value, field)


def _int(value: object, field: str) -> int:
    if isinstance(value, bool):
        raise OrderMappingError(f"{field} is not a whole number")
    try:
        return int(str(value))
    except (TypeError, ValueError) as exc:
        raise OrderMappingError(f"{field} is not a whole number: {value!r}") from exc


def _dict(value: object, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise OrderMappingError(f"{field} is not an object")
    return value


def _list(value: object, field: str) -> Sequence[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise OrderMappingError(f"{field} is not a list")
    return value


# --- orders ----------------------------------------------------------------------------------


def map_status(raw_status: str) -> OrderStatus:
    return ORDER_STATUSES.get(raw_status, OrderStatus.UNKNOWN)


def map_item(raw: object, position: int, currency: str) -> OrderItem:
    item = _dict(raw, f"item_list[{position}]")
    field = f"item_list[{position}]"
    quantity = _int(item.get("model_quantity_purchased"), f"{field}.model_quantity_purchased")
    unit_price = money(item.get("model_original_price"), currency, f"{field}.model_original_price")
    discounted = optional_money(
        item.get("model_discounted_price"), currency, f"{field}.discounted_price"
    )
    discount = Decimal("0")
    # 0 marks a bundle deal, whose discount Shopee does not break down per item.
    if discounted is not None and Decimal("0") < discounted < unit_price:
        discount = (unit_price - discounted) * quantity
    model_id = item.get("model_id")
    line_id = item.get("order_item_id") or model_id
    return OrderItem(
        sku=text_or_none(item.get("model_sku")) or text_or_none(item.get("item_sku")),
        name=text_or_none(item.get("item_name")) or "",
        quantity=quantity,
        unit_price=unit_price,
        discount=discount,
        variation=text_or_none(item.get("model_name")),
        external_item_id=text_or_none(line_id) if line_id else None,
        external_product_id=text_or_none(item.get("item_id")),
    )


def map_address(raw: object) -> Address | None:
    """`recipient_address` {name, phone, town, district, city, state, region, zipcode,
    full_address}. Shopee has no street field: the street is full_address less the parts it
    ends with. `town` is the smallest area (a Thai tambon/khwaeng, a Vietnamese ward); it is
    the district when Shopee sends no district, else the second address line."""
    address = _dict(raw, "recipient_address")
    if not address:
        return None
    town, district, city, state, zipcode = (
        text_or_none(address.get(key)) for key in ("town", "district", "city", "state", "zipcode")
    )
    full_address = text_or_none(address.get("full_address"))
    street = None
    if full_address is not None:
        street = without_trailing_parts(full_address, (town, district, city, state, zipcode))
    return Address(
        name=text_or_none(address.get("name")),
        phone=text_or_none(address.get("phone")),
        line1=street,
        line2=town if district else None,
        district=district or town,
        city=city,
        state=state,
        postal_code=zipcode,
        country=text_or_none(address.get("region")),
        full_address=full_address,
    )


def map_order(raw: Mapping[str, Any]) -> NormalizedOrder:
    """One `get_order_detail` order. Raises OrderMappingError, never anything else.

    `subtotal` is after line discounts; `discount` is what the buyer saved beyond them
    (vouchers, coins): subtotal + shipping_fee - total, never below 0. `total` is Shopee's
    `total_amount`, which Shopee sends only once the order is paid; before that it is
    subtotal + shipping_fee."""
    try:
        return _map_order(raw)
    except OrderMappingError:
        raise
    except (ArithmeticError, TypeError, ValueError, AttributeError, KeyError) as exc:
        raise OrderMappingError(f"unreadable order payload ({type(exc).__name__})") from exc


def _map_order(raw: Mapping[str, Any]) -> NormalizedOrder:
    if not isinstance(raw, Mapping):
        raise OrderMappingError("order is not an object")
    order_sn = text_or_none(raw.get("order_sn"))
    if order_sn is None:
        raise OrderMappingError("order_sn is missing")
    raw_status = text_or_none(raw.get("order_status"))
    if raw_status is None:
        raise OrderMappingError("order_status is missing")
    currency = text_or_none(raw.get("currency"))
    if currency is None:
        raise OrderMappingError("currency is missing")
    items = [
        map_item(item, i, currency)
        for i, item in enumerate(_list(raw.get("item_list"), "item_list"))
    ]
    subtotal = sum((i.unit_price * i.quantity - i.discount for i in items), Decimal("0"))
    shipping = _shipping_fee(raw, currency)
    total_raw = raw.get("total_amount")
    if total_raw is None:
        total = subtotal + shipping
        discount = Decimal("0")
    else:
        total = money(total_raw, currency, "total_amount")
        discount = max(Decimal("0"), subtotal + shipping - total)
    address = map_address(raw.get("recipient_address"))
    return NormalizedOrder(
        external_order_id=order_sn,
        status=map_status(raw_status),
        raw_status=raw_status,
        currency=currency,
        created_at=timestamp(raw.get("create_time"), "create_time"),
        updated_at=timestamp(raw.get("update_time"), "update_time"),
        subtotal=subtotal,
        shipping_fee=shipping,
        discount=discount,
        total=total,
        items=items,
        buyer_name=(address.name if address else None) or text_or_none(raw.get("buyer_username")),
        buyer_phone=address.phone if address else None,
        buyer_email=None,  # Shopee never shares the buyer's email
        shipping_address=address,
        payment_method=text_or_none(raw.get("payment_method")),
        is_cod=raw.get("cod") is True,
        paid_at=optional_timestamp(raw.get("pay_time"), "pay_time"),
        raw=dict(raw),
    )


def _shipping_fee(raw: Mapping[str, Any], currency: str) -> Decimal:
    """The logistics partner's fee once Shopee confirms it, Shopee's estimate before."""
    actual = optional_money(raw.get("actual_shipping_fee"), currency, "actual_shipping_fee")
    if actual is not None and raw.get("actual_shipping_fee_confirmed") is True:
        return actual
    estimated = optional_money(
        raw.get("estimated_shipping_fee"), currency, "estimated_shipping_fee"
    )
    return estimated if estimated is not None else Decimal("0")


# --- products --------------------------------------------------------------------------------


def _price(price_info: object, field: str) -> tuple[Decimal | None, str | None]:
    entries = _list(price_info, field)
    if not entries:
        return None, None
    first = _dict(entries[0], f"{field}[0]")
    price = first.get("current_price", first.get("original_price"))
    currency = text_or_none(first.get("currency"))
    return optional_money(price, currency, f"{field}.current_price"), currency


def _stock(stock_info: object, field: str) -> int | None:
    info = _dict(stock_info, field)
    if not info:
        return None
    summary = _dict(info.get("summary_info"), f"{field}.summary_info")
    if summary.get("total_available_stock") is not None:
        return _int(summary["total_available_stock"], f"{field}.total_available_stock")
    seller = _list(info.get("seller_stock"), f"{field}.seller_stock")
    if not seller:
        return None
    return sum(_int(_dict(s, "seller_stock").get("stock", 0), "seller_stock.stock") for s in seller)


def _model_name(model: Mapping[str, Any], tiers: Sequence[Any]) -> str | None:
    if text_or_none(model.get("model_name")):
        return text_or_none(model.get("model_name"))
    options = []
    for tier, index in zip(tiers, _list(model.get("tier_index"), "tier_index"), strict=False):
        option_list = _list(_dict(tier, "tier_variation").get("option_list"), "option_list")
        if isinstance(index, int) and 0 <= index < len(option_list):
            options.append(text_or_none(_dict(option_list[index], "option").get("option")) or "")
    return "/".join(options) or None


def map_product(
    base: Mapping[str, Any], models: Mapping[str, Any] | None = None
) -> NormalizedProduct:
    """One `get_item_base_info` item, with its `get_model_list` answer when it has models.
    An item without models is one variation whose id is 0 (what update_stock expects)."""
    try:
        return _map_product(base, models)
    except OrderMappingError:
        raise
    except (ArithmeticError, TypeError, ValueError, AttributeError, KeyError) as exc:
        raise OrderMappingError(f"unreadable item payload ({type(exc).__name__})") from exc


def _map_product(base: Mapping[str, Any], models: Mapping[str, Any] | None) -> NormalizedProduct:
    item_id = text_or_none(base.get("item_id"))
    if item_id is None:
        raise OrderMappingError("item_id is missing")
    base_price, currency = _price(base.get("price_info"), "price_info")
    variations: list[ProductVariation] = []
    if base.get("has_model") and models is not None:
        tiers = _list(models.get("tier_variation"), "tier_variation")
        for model in _list(models.get("model"), "model"):
            entry = _dict(model, "model")
            price, model_currency = _price(entry.get("price_info"), "model.price_info")
            currency = currency or model_currency
            variations.append(
                ProductVariation(
                    external_variation_id=text_or_none(entry.get("model_id")),
                    sku=text_or_none(entry.get("model_sku")),
                    name=_model_name(entry, tiers),
                    price=price,
                    stock=_stock(entry.get("stock_info_v2"), "model.stock_info_v2"),
                )
            )
    else:
        variations.append(
            ProductVariation(
                external_variation_id="0",
                sku=text_or_none(base.get("item_sku")),
                name=None,
                price=base_price,
                stock=_stock(base.get("stock_info_v2"), "stock_info_v2"),
            )
        )
    return NormalizedProduct(
        external_product_id=item_id,
        name=text_or_none(base.get("item_name")) or "",
        status=text_or_none(base.get("item_status")) or "UNKNOWN",
        currency=currency,
        updated_at=optional_timestamp(base.get("update_time"), "update_time"),
        variations=variations,
        raw={"item": dict(base), "models": dict(models) if models is not None else None},
    )


# --- buyer data ------------------------------------------------------------------------------

# Top-level fields of a `get_order_detail` order that identify or describe the buyer (the
# recipient's name, phone and address; account; tax and invoice details; their note).
BUYER_FIELDS = frozenset(
    {
        "recipient_address",
        "buyer_username",
        "buyer_user_id",
        "buyer_cpf_id",
        "invoice_data",
        "message_to_seller",
    }
)


def erase_buyer_data(raw: dict[str, Any]) -> dict[str, Any]:
    """The stored payload without its buyer fields; everything else is kept as received."""
    return {key: value for key, value in raw.items() if key not in BUYER_FIELDS}
