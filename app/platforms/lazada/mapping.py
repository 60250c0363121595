"""Lazada raw payloads to normalized types, and Lazada's answers to failure classes.

Order status (Lazada has no order status: every order *item* - one row per unit - has its own;
`statuses[]` on the order lists the distinct ones). Each unit's status maps as follows
(sources: R = marketplace-apis.md §2.4, T = third-party / Lazada guide pages only):

    Lazada status       OrderStatus     source / note
    ------------------  --------------  ---------------------------------------------------
    unpaid              UNPAID          R
    pending             PENDING         R
    topack              PENDING         R (legacy): waiting to be packed
    repacked            PENDING         T (order-status-flow guide): must be packed again
    packed              READY_TO_SHIP   R (legacy)
    toship              READY_TO_SHIP   R (legacy)
    ready_to_ship       READY_TO_SHIP   R
    shipping            SHIPPED         R (legacy)
    shipped             SHIPPED         R
    delivered           DELIVERED       R
    confirmed           COMPLETED       T: buyer confirmed receipt (final)
    canceled/cancelled  CANCELLED       R ("canceled" is Lazada's spelling)
    returned            RETURNED        R
    failed              FAILED          R (legacy)
    failed_delivery     FAILED          T
    lost_by_3pl         FAILED          R (legacy)
    damaged_by_3pl      FAILED          R (legacy)
    anything else       UNKNOWN         raw status kept

One status per order, when the units differ: canceled units are ignored while any unit is not
canceled (the order lives on for the rest), unknown ones while any is known; of the rest the
least advanced wins, in the order UNPAID < PENDING < READY_TO_SHIP < SHIPPED < FAILED <
DELIVERED < COMPLETED < RETURNED, since the seller still has that unit to act on (a partly
returned order stays DELIVERED; one lost unit of a delivered order is FAILED). `raw_status` is
the raw status of the unit that decided.

Money: the order's `price` is the items' list price before any voucher, a string that may carry
thousands separators ("1,299.00"); the buyer pays `price - voucher + shipping_fee` (Lazada's
get-order guide). Item rows carry `item_price` and their share of the voucher (`voucher_amount`);
the order-level `discount` is the part of `voucher` not allotted to item rows.

Errors (Lazada's envelope is `{code, type, message, request_id}`, code "0" = success; the codes
below are third-party only, an official list is unconfirmed):

    answer                                              class
    --------------------------------------------------  ---------------------------------------
    HTTP 429; ApiCallLimit, AppCallLimit, SellerCallLimit  RateLimitedError (Retry-After, else
                                                           "ban will last N seconds" in message)
    IllegalAccessToken, AccessTokenExpired,             AuthError (refresh once, then the
    InvalidAccessToken, MissingAccessToken              connection needs re-authorization)
    IllegalRefreshToken (and any refusal of a refresh)  ReauthRequiredError (in the client)
    IncompleteSignature, InvalidSignature,              PermanentError (signature, app key and
    MissingAppKey, InvalidAppKey, InvalidTimestamp,     request errors: retrying cannot help)
    IllegalTimestamp, MissingParameter,
    InvalidParameter, InvalidApiPath, AppWhiteIpLimit
    HTTP 5xx; ServiceTimeout, ServiceUnavailable,       TransientError
    InternalError; any other code of type ISP or
    SYSTEM; malformed JSON on a 2xx/5xx
    any other code (type ISV), other HTTP 4xx           PermanentError with Lazada's message
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
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

PLATFORM = PlatformCode.LAZADA.value
DEFAULT_CURRENCY = "THB"  # Lazada Thailand; order rows carry their own currency when given
# Lazada Thailand answers in local time; a time without an offset is read as Bangkok time.
SITE_TZ = timezone(timedelta(hours=7))
# Lazada names the country ("Thailand"); Shopee and Meta send the ISO code, which we keep.
COUNTRY_CODES = {
    "thailand": "TH",
    "malaysia": "MY",
    "singapore": "SG",
    "philippines": "PH",
    "vietnam": "VN",
    "viet nam": "VN",
    "indonesia": "ID",
}

STATUS_MAP: dict[str, OrderStatus] = {
    "unpaid": OrderStatus.UNPAID,
    "pending": OrderStatus.PENDING,
    "topack": OrderStatus.PENDING,
    "repacked": OrderStatus.PENDING,
    "packed": OrderStatus.READY_TO_SHIP,
    "toship": OrderStatus.READY_TO_SHIP,
    "ready_to_ship": OrderStatus.READY_TO_SHIP,
    "shipping": OrderStatus.SHIPPED,
    "shipped": OrderStatus.SHIPPED,
    "delivered": OrderStatus.DELIVERED,
    "confirmed": OrderStatus.COMPLETED,
    "canceled": OrderStatus.CANCELLED,
    "cancelled": OrderStatus.CANCELLED,
    "returned": OrderStatus.RETURNED,
    "failed": OrderStatus.FAILED,
    "failed_delivery": OrderStatus.FAILED,
    "lost_by_3pl": OrderStatus.FAILED,
    "damaged_by_3pl": OrderStatus.FAILED,
}
_PROGRESS = (
    OrderStatus.UNPAID,
    OrderStatus.PENDING,
    OrderStatus.READY_TO_SHIP,
    OrderStatus.SHIPPED,
    OrderStatus.FAILED,
    OrderStatus.DELIVERED,
    OrderStatus.COMPLETED,
    OrderStatus.RETURNED,
    OrderStatus.CANCELLED,
    OrderStatus.UNKNOWN,
)
_RANK = {status: rank for rank, status in enumerate(_PROGRESS)}

RATE_LIMIT_CODES = frozenset({"ApiCallLimit", "AppCallLimit", "SellerCallLimit"})
AUTH_CODES = frozenset(
    {"IllegalAccessToken", "AccessTokenExpired", "InvalidAccessToken", "MissingAccessToken"}
)
REFRESH_REFUSED_CODES = frozenset({"IllegalRefreshToken"})
PERMANENT_CODES = frozenset(
    {
        "IncompleteSignature",
        "InvalidSignature",
        "MissingAppKey",
        "InvalidAppKey",
        "InvalidTimestamp",
        "IllegalTimestamp",
        "MissingParameter",
        "InvalidParameter",
        "InvalidApiPath",
        "AppWhiteIpLimit",
    }
)
TRANSIENT_CODES = frozenset({"ServiceTimeout", "ServiceUnavailable", "InternalError"})
TRANSIENT_TYPES = frozenset({"ISP", "SYSTEM"})
_BAN_SECONDS = re.compile(r"ban will last (\d+(?:\.\d+)?) ?s", re.IGNORECASE)


LazadaMappingError = MappingError


class LazadaPermanentError(PermanentError):
    """A permanent failure carrying Lazada's per-SKU `detail` list when there is one."""

    def __init__(
        self, message: str, *, detail: Sequence[Mapping[str, Any]] = (), **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.detail = list(detail)


# --- failure classes ---------------------------------------------------------------------


def error_for(
    payload: Mapping[str, Any], status_code: int, retry_after: float | None = None
) -> MarketplaceError:
    """The failure class of one non-success answer (the table in the module docstring)."""
    code = str(payload.get("code") or "")
    kind = str(payload.get("type") or "").upper()
    message = str(payload.get("message") or f"HTTP {status_code} from Lazada")
    request_id = payload.get("request_id")
    kw: dict[str, Any] = {
        "platform": PLATFORM,
        "code": code or None,
        "status_code": status_code,
        "request_id": str(request_id) if request_id is not None else None,
    }
    if status_code == 429 or code in RATE_LIMIT_CODES:
        if retry_after is None:
            match = _BAN_SECONDS.search(message)
            retry_after = float(match.group(1)) if match else None
        return RateLimitedError(message, retry_after=retry_after, **kw)
    if code in AUTH_CODES or code in REFRESH_REFUSED_CODES:
        return AuthError(message, **kw)
    detail = payload.get("detail")
    detail_rows = [d for d in detail if isinstance(d, Mapping)] if isinstance(detail, list) else []
    if code in PERMANENT_CODES:
        return LazadaPermanentError(message, detail=detail_rows, **kw)
    if status_code >= 500 or code in TRANSIENT_CODES or kind in TRANSIENT_TYPES:
        return TransientError(message, **kw)
    if status_code == 401:
        return AuthError(message, **kw)
    return LazadaPermanentError(message, detail=detail_rows, **kw)


def classify_response(response: httpx.Response) -> dict[str, Any]:
    """The JSON payload of a successful answer, or the right `MarketplaceError` raised."""
    status = response.status_code
    retry_after = parse_retry_after(response)
    try:
        payload = decode_json(response, PLATFORM)
    except TransientError as exc:
        if status == 429:
            raise RateLimitedError(
                "Rate limited by Lazada (HTTP 429)",
                retry_after=retry_after,
                platform=PLATFORM,
                status_code=status,
            ) from exc
        if 400 <= status < 500:
            raise PermanentError(
                f"Lazada answered HTTP {status}", platform=PLATFORM, status_code=status
            ) from exc
        raise
    code = payload.get("code")
    if status < 400 and (code is None or str(code) == "0"):
        return payload
    raise error_for(payload, status, retry_after)


# --- values ------------------------------------------------------------------------------


def money(value: Any, currency: str) -> Decimal:
    """Lazada's strings ("1,299.00") or JSON numbers in the currency's minor units; a missing
    amount is zero."""
    if value is None or value == "":
        value = 0
    if isinstance(value, str):
        value = value.replace(",", "")  # Lazada formats prices with thousands separators
    return money_from(value, currency)


def parse_time(value: Any) -> datetime:
    """Lazada times ("2024-01-05 14:22:01 +0700", ISO-8601, or epoch ms) as UTC."""
    if isinstance(value, bool) or value is None:
        raise LazadaMappingError(f"not a time: {value!r}")
    if isinstance(value, int | float) or (isinstance(value, str) and value.strip().isdigit()):
        number = int(value)
        seconds = number / 1000 if number > 10**11 else number
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise LazadaMappingError(f"not a time: {value!r}") from exc
    if not isinstance(value, str):
        raise LazadaMappingError(f"not a time: {value!r}")
    text = value.strip()
    if len(text) == 25 and text[19] == " " and text[20] in "+-":
        text = f"{text[:19]}{text[20:23]}:{text[23:]}"  # " +0700" -> "+07:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise LazadaMappingError(f"not a time: {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=SITE_TZ)
    return parsed.astimezone(UTC)


def order_id_of(order: Mapping[str, Any]) -> str:
    value = order.get("order_id")
    if value is None or isinstance(value, bool) or str(value).strip() == "":
        raise LazadaMappingError("order without order_id")
    return str(value).strip()


# --- status ------------------------------------------------------------------------------


def map_status(raw: str) -> OrderStatus:
    return STATUS_MAP.get(raw.strip().lower(), OrderStatus.UNKNOWN)


def order_status(raw_statuses: Sequence[str]) -> tuple[OrderStatus, str]:
    """One normalized status (and the deciding raw one) from the statuses of the units."""
    units = [(map_status(raw), raw) for raw in raw_statuses if raw]
    if not units:
        return OrderStatus.UNKNOWN, ""
    live = [u for u in units if u[0] is not OrderStatus.CANCELLED] or units
    known = [u for u in live if u[0] is not OrderStatus.UNKNOWN] or live
    return min(known, key=lambda unit: _RANK[unit[0]])


# --- orders ------------------------------------------------------------------------------


def _row_discount(row: Mapping[str, Any], currency: str) -> Decimal:
    if row.get("voucher_amount") not in (None, ""):
        return money(row["voucher_amount"], currency)
    return money(row.get("voucher_seller"), currency) + money(row.get("voucher_platform"), currency)


def group_items(rows: Sequence[Mapping[str, Any]], currency: str) -> list[OrderItem]:
    """One `OrderItem` per SKU and unit price: Lazada sends one row per unit, no quantity."""
    grouped: dict[tuple[str, Decimal], OrderItem] = {}
    for row in rows:
        sku = text_or_none(row.get("sku")) or text_or_none(row.get("shop_sku")) or ""
        price = money(row.get("item_price"), currency)
        key = (sku, price.normalize())
        item = grouped.get(key)
        if item is None:
            grouped[key] = OrderItem(
                sku=sku or None,
                name=text_or_none(row.get("name")) or sku or "",
                quantity=1,
                unit_price=price,
                discount=_row_discount(row, currency),
                variation=text_or_none(row.get("variation")),
                external_item_id=text_or_none(row.get("order_item_id")),
                external_product_id=text_or_none(row.get("product_id")),
            )
        else:
            item.quantity += 1
            item.discount += _row_discount(row, currency)
    return list(grouped.values())


def _address(raw: Any) -> Address | None:
    if not isinstance(raw, Mapping):
        return None
    name = " ".join(
        p for p in (text_or_none(raw.get("first_name")), text_or_none(raw.get("last_name"))) if p
    )
    parts = [text_or_none(raw.get(f"address{i}")) for i in range(1, 6)]
    return Address(
        name=name or None,
        phone=text_or_none(raw.get("phone")) or text_or_none(raw.get("phone2")),
        line1=parts[0],
        line2=parts[1],
        district=parts[3],
        city=text_or_none(raw.get("city")) or parts[3],
        state=parts[2],
        postal_code=text_or_none(raw.get("post_code")) or parts[4],
        country=_country_code(text_or_none(raw.get("country"))),
        full_address=", ".join(p for p in parts if p) or None,
    )


def _country_code(country: str | None) -> str | None:
    if country is None:
        return None
    return COUNTRY_CODES.get(country.casefold(), country.upper() if len(country) == 2 else country)


def map_order(order: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> NormalizedOrder:
    """An order of `/orders/get` or `/order/get` with its rows of `/orders/items/get`."""
    if not isinstance(order, Mapping):
        raise LazadaMappingError("order is not an object")
    external_id = order_id_of(order)
    raw_statuses = [str(r.get("status") or "") for r in rows]
    if not any(raw_statuses):
        listed = order.get("statuses")
        raw_statuses = [str(s) for s in listed] if isinstance(listed, list) else []
    status, raw_status = order_status(raw_statuses)

    currency = next((c for r in rows if (c := text_or_none(r.get("currency")))), DEFAULT_CURRENCY)
    items = group_items(rows, currency)
    item_discounts = sum((_row_discount(r, currency) for r in rows), Decimal("0"))
    price = money(order.get("price"), currency)
    voucher = money(order.get("voucher"), currency)
    shipping_fee = money(order.get("shipping_fee"), currency)
    if items:
        subtotal = sum((i.unit_price * i.quantity - i.discount for i in items), Decimal("0"))
    else:
        subtotal = price - voucher
        item_discounts = voucher
    discount = max(Decimal("0"), voucher - item_discounts)

    buyer = " ".join(
        p
        for p in (
            text_or_none(order.get("customer_first_name")),
            text_or_none(order.get("customer_last_name")),
        )
        if p
    )
    address = _address(order.get("address_shipping"))
    payment = text_or_none(order.get("payment_method"))
    return NormalizedOrder(
        external_order_id=external_id,
        status=status,
        raw_status=raw_status,
        currency=currency,
        created_at=parse_time(order.get("created_at")),
        updated_at=parse_time(order.get("updated_at")),
        subtotal=subtotal,
        shipping_fee=shipping_fee,
        discount=discount,
        total=price - voucher + shipping_fee,
        items=items,
        buyer_name=buyer or None,
        buyer_phone=address.phone if address else None,
        buyer_email=None,  # Lazada does not share the buyer's e-mail address
        shipping_address=address,
        payment_method=payment,
        is_cod=payment is not None
        and payment.upper().replace(" ", "_") in {"COD", "CASH_ON_DELIVERY"},
        paid_at=None,  # no payment time on Lazada's order APIs
        raw={"order": dict(order), "items": [dict(r) for r in rows]},
    )


# --- products ----------------------------------------------------------------------------


def _variation_name(sku: Mapping[str, Any]) -> str | None:
    props = sku.get("saleProp")
    if isinstance(props, Mapping):
        values = [str(v) for v in props.values() if v not in (None, "")]
        return "/".join(values) or None
    return text_or_none(sku.get("Variation"))


def map_product(product: Mapping[str, Any]) -> NormalizedProduct:
    """A product of `/products/get`; each of its `skus` is one variation."""
    if not isinstance(product, Mapping) or product.get("item_id") in (None, ""):
        raise LazadaMappingError("product without item_id")
    attributes = product.get("attributes")
    name = text_or_none(attributes.get("name")) if isinstance(attributes, Mapping) else None
    skus = product.get("skus")
    variations = []
    for sku in skus if isinstance(skus, list) else []:
        if not isinstance(sku, Mapping):
            continue
        quantity = sku.get("quantity")
        variations.append(
            ProductVariation(
                external_variation_id=text_or_none(sku.get("SkuId")),
                sku=text_or_none(sku.get("SellerSku")),
                name=_variation_name(sku),
                price=(
                    money(sku["price"], DEFAULT_CURRENCY)
                    if sku.get("price") not in (None, "")
                    else None
                ),
                stock=int(quantity) if quantity not in (None, "") else None,
            )
        )
    updated = product.get("updated_time")
    return NormalizedProduct(
        external_product_id=str(product["item_id"]),
        name=name or "",
        status=str(product.get("status") or ""),
        currency=DEFAULT_CURRENCY,
        updated_at=parse_time(updated) if updated not in (None, "") else None,
        variations=variations,
        raw=dict(product),
    )


# --- buyer data ----------------------------------------------------------------------------

# Fields of an order that identify or describe the buyer: names, both addresses (with their
# phones), tax identity and free-text notes.
BUYER_ORDER_FIELDS = frozenset(
    {
        "customer_first_name",
        "customer_last_name",
        "address_shipping",
        "address_billing",
        "national_registration_number",
        "tax_code",
        "branch_number",
        "remarks",
        "gift_message",
        "buyer_id",
    }
)
# Item rows may name the buyer's account too.
BUYER_ITEM_FIELDS = frozenset({"buyer_id"})


def erase_buyer_data(raw: dict[str, Any]) -> dict[str, Any]:
    """The stored payload ({"order": ..., "items": [...]}, as map_order keeps it) without its
    buyer fields; everything else is kept as received."""
    erased = dict(raw)
    order = raw.get("order")
    if isinstance(order, Mapping):
        erased["order"] = {k: v for k, v in order.items() if k not in BUYER_ORDER_FIELDS}
    items = raw.get("items")
    if isinstance(items, list):
        erased["items"] = [
            {k: v for k, v in row.items() if k not in BUYER_ITEM_FIELDS}
            if isinstance(row, Mapping)
            else row
            for row in items
        ]
    return erased
