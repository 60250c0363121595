"""Meta Commerce payloads to normalized types, and Graph errors to the failure classes.

Order states (`order_status.state`) to `OrderStatus`:

| Meta state          | OrderStatus | meaning                                                |
|---------------------|-------------|--------------------------------------------------------|
| FB_PROCESSING       | UNPAID      | Meta still checks payment and risk; may never advance  |
| CREATED             | PENDING     | paid, waiting for the seller's acknowledgement         |
| IN_PROGRESS         | PENDING     | acknowledged; not every item shipped or cancelled yet  |
| COMPLETED           | COMPLETED   | every item shipped or cancelled (Meta's last state)    |
| SHIPPED (legacy)    | SHIPPED     | legacy Page API state                                  |
| CANCELLED (legacy)  | CANCELLED   | legacy Page API state                                  |
| REFUNDED (legacy)   | RETURNED    | legacy Page API state                                  |
| anything else       | UNKNOWN     | the raw state is kept                                  |

Cancellations and refunds are edges of the order, not states. The client learns of them and
refines a COMPLETED order:
- COMPLETED with no shipments -> CANCELLED (every item was cancelled, since COMPLETED means each
  item was shipped or cancelled). Listing: `filters=NO_SHIPMENTS`; one order: `/shipments` empty.
- COMPLETED with any refund -> RETURNED (full or partial; the refund's amount is not read).
  Listing: `filters=HAS_REFUNDS`; one order: `/refunds` not empty.
A partial cancellation of an order that also shipped items stays COMPLETED.

Graph errors (`{"error": {code, error_subcode, is_transient, message, fbtrace_id}}`):

| code / HTTP                                  | class                                      |
|----------------------------------------------|--------------------------------------------|
| HTTP 429; codes 4, 17, 32, 613, 80001, 80004 | RateLimitedError (1)                       |
| 190, 102 (token invalid or expired)          | AuthError (2)                              |
| 10, 200-299 (permissions)                    | PermanentError                             |
| 1, 2, `is_transient: true`, HTTP 5xx         | TransientError                             |
| anything else (e.g. 100 bad parameter)       | PermanentError                             |

(1) retry_after: the larger of Retry-After and the usage headers' largest
    `estimated_time_to_regain_access` (minutes) x 60, when above zero.
(2) the client raises ReauthRequiredError: Meta has no refresh token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from app.platforms.errors import (
    AuthError,
    MarketplaceError,
    PermanentError,
    RateLimitedError,
    TransientError,
)
from app.platforms.http import decode_json
from app.platforms.types import (
    Address,
    NormalizedOrder,
    NormalizedProduct,
    OrderItem,
    OrderStatus,
    ProductVariation,
)
from app.platforms.values import MappingError, money_from, text_or_none

PLATFORM = "facebook"

STATE_MAP: dict[str, OrderStatus] = {
    "FB_PROCESSING": OrderStatus.UNPAID,
    "CREATED": OrderStatus.PENDING,
    "IN_PROGRESS": OrderStatus.PENDING,
    "COMPLETED": OrderStatus.COMPLETED,
    "SHIPPED": OrderStatus.SHIPPED,
    "CANCELLED": OrderStatus.CANCELLED,
    "REFUNDED": OrderStatus.RETURNED,
}
ALL_STATES = ("FB_PROCESSING", "CREATED", "IN_PROGRESS", "COMPLETED")

RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, 80001, 80004})
AUTH_CODES = frozenset({190, 102})
TRANSIENT_CODES = frozenset({1, 2})


OrderMappingError = MappingError


# --- errors --------------------------------------------------------------------------------


def usage_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds until access returns per X-Business-Use-Case-Usage / X-App-Usage, if above 0."""
    minutes: float = 0.0
    for name in ("x-business-use-case-usage", "x-app-usage", "x-ad-account-usage"):
        raw = headers.get(name)
        if not raw:
            continue
        try:
            parsed = json.loads(raw)
        except ValueError:
            continue
        for entry in _usage_entries(parsed):
            value = entry.get("estimated_time_to_regain_access")
            if isinstance(value, int | float) and not isinstance(value, bool):
                minutes = max(minutes, float(value))
    return minutes * 60 if minutes > 0 else None


def _usage_entries(parsed: object) -> Iterable[Mapping[str, Any]]:
    # BUC usage is {"<object id>": [{type, call_count, ..., estimated_time_to_regain_access}]};
    # app usage is one flat object.
    if isinstance(parsed, dict):
        if any(not isinstance(v, list) for v in parsed.values()):
            yield parsed
        for value in parsed.values():
            if isinstance(value, list):
                yield from (e for e in value if isinstance(e, dict))


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def classify_response(response: httpx.Response) -> dict[str, Any]:
    """The JSON payload of a successful Graph answer, or the right MarketplaceError raised."""
    status = response.status_code
    request_id = response.headers.get("x-fb-trace-id") or response.headers.get("x-fb-request-id")
    if status < 400:
        payload = decode_json(response, PLATFORM)
        error = payload.get("error")
        if not isinstance(error, dict):
            return payload
    else:
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            error = {}
    raise error_from(status, error, response.headers, request_id)


def error_from(
    status: int, error: Mapping[str, Any], headers: httpx.Headers, request_id: str | None
) -> MarketplaceError:
    code = _int(error.get("code"))
    subcode = _int(error.get("error_subcode"))
    message = str(error.get("message") or f"HTTP {status} from the Graph API")
    request_id = str(error.get("fbtrace_id") or request_id or "") or None
    code_text = None if code is None else (f"{code}/{subcode}" if subcode else str(code))
    common: dict[str, Any] = {
        "platform": PLATFORM,
        "code": code_text,
        "status_code": status,
        "request_id": request_id,
    }
    if status == 429 or code in RATE_LIMIT_CODES:
        waits = [w for w in (_retry_after(headers), usage_retry_after(headers)) if w]
        return RateLimitedError(message, retry_after=max(waits) if waits else None, **common)
    if code in AUTH_CODES:
        return AuthError(message, **common)
    if code is not None and (code == 10 or 200 <= code <= 299):
        return PermanentError(message, **common)
    if code in TRANSIENT_CODES or error.get("is_transient") is True or status >= 500:
        return TransientError(message, **common)
    return PermanentError(message, **common)


def _retry_after(headers: httpx.Headers) -> float | None:
    try:
        return max(0.0, float(headers.get("retry-after", "")))
    except ValueError:
        return None


# --- values --------------------------------------------------------------------------------


def money(value: object, currency: str) -> Decimal:
    """A Graph amount ("20.45", 20.45 or {"amount": "20.45"}) in the order currency's minor
    units: Meta writes two decimals even for VND ("38000.00")."""
    if isinstance(value, Mapping):
        value = value.get("amount")
    return money_from(value, currency)


def graph_time(value: object) -> datetime:
    """Graph's ISO 8601 times ("2019-01-14T19:17:31+0000") or Unix seconds, as aware UTC."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str) and value.strip():
            text = value.strip()
            if text.isdigit():
                return datetime.fromtimestamp(int(text), UTC)
            parsed = datetime.fromisoformat(text)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise OrderMappingError(f"not a time: {value!r}") from exc
    raise OrderMappingError(f"not a time: {value!r}")


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def edge_data(value: object) -> list[dict[str, Any]]:
    """An expanded edge: Graph sends {"data": [...], "paging": {...}}; a bare list is accepted."""
    if isinstance(value, dict):
        value = value.get("data")
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


def inline_items_complete(order: Mapping[str, Any]) -> bool:
    """True when the order carries all its items inline (present and not paged)."""
    items = order.get("items")
    if isinstance(items, list):
        return True
    if not isinstance(items, dict) or not isinstance(items.get("data"), list):
        return False
    return "next" not in _dict(items.get("paging"))


def order_state(raw: Mapping[str, Any]) -> str:
    status = raw.get("order_status")
    if isinstance(status, dict):
        return str(status.get("state") or "")
    return str(status or "")


# --- orders --------------------------------------------------------------------------------


def map_order(
    raw: dict[str, Any], *, fully_cancelled: bool = False, refunded: bool = False
) -> NormalizedOrder:
    """One commerce order; raises OrderMappingError (only) when the payload cannot be read."""
    try:
        return _map_order(raw, fully_cancelled=fully_cancelled, refunded=refunded)
    except OrderMappingError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError, OSError) as exc:
        raise OrderMappingError(f"unreadable order payload: {type(exc).__name__}: {exc}") from exc


def normalized_status(raw_state: str, *, fully_cancelled: bool, refunded: bool) -> OrderStatus:
    status = STATE_MAP.get(raw_state.upper(), OrderStatus.UNKNOWN)
    if status is OrderStatus.COMPLETED:
        if fully_cancelled:
            return OrderStatus.CANCELLED
        if refunded:
            return OrderStatus.RETURNED
    return status


def _map_order(raw: dict[str, Any], *, fully_cancelled: bool, refunded: bool) -> NormalizedOrder:
    if not isinstance(raw, dict):
        raise OrderMappingError("order payload is not an object")
    order_id = text_or_none(raw.get("id"))
    if order_id is None:
        raise OrderMappingError("order without id")
    raw_state = order_state(raw)
    payment = _dict(raw.get("estimated_payment_details"))
    subtotals = _dict(payment.get("subtotal"))
    shipping_option = _dict(raw.get("selected_shipping_option"))

    raw_items = edge_data(raw.get("items"))
    currency = _currency(
        payment.get("total_amount"),
        subtotals.get("items"),
        *(item.get("price_per_unit") for item in raw_items),
        shipping_option.get("price"),
    )
    if currency is None:
        raise OrderMappingError(f"order {order_id}: no currency in any amount")
    items = [_map_item(item, currency) for item in raw_items]

    gross = sum((item.unit_price * item.quantity for item in items), Decimal("0"))
    listed = subtotals.get("items")
    subtotal = money(listed, currency) if listed is not None else gross
    if subtotals.get("shipping") is not None:
        shipping = money(subtotals["shipping"], currency)
    elif shipping_option.get("price") is not None:
        shipping = money(shipping_option["price"], currency)
    else:
        shipping = Decimal("0")
    tax = money(payment["tax"], currency) if payment.get("tax") is not None else Decimal("0")
    if payment.get("total_amount") is not None:
        total = money(payment["total_amount"], currency)
    else:
        total = subtotal + shipping + tax
    # Meta reports no discount field on the order; promotions show as the gap to the total.
    discount = max(Decimal("0"), subtotal + shipping + tax - total)

    created = graph_time(raw.get("created"))
    updated = graph_time(raw["last_updated"]) if raw.get("last_updated") else created
    buyer = _dict(raw.get("buyer_details"))
    return NormalizedOrder(
        external_order_id=order_id,
        status=normalized_status(raw_state, fully_cancelled=fully_cancelled, refunded=refunded),
        raw_status=raw_state,
        currency=currency,
        created_at=created,
        updated_at=updated,
        subtotal=subtotal,
        shipping_fee=shipping,
        discount=discount,
        total=total,
        items=items,
        buyer_name=text_or_none(buyer.get("name")),
        buyer_phone=None,
        buyer_email=text_or_none(buyer.get("email")),
        shipping_address=_map_address(raw.get("shipping_address")),
        payment_method=None,
        is_cod=False,
        paid_at=None,
        raw=raw,
    )


def _currency(*amounts: object) -> str | None:
    for amount in amounts:
        currency = text_or_none(_dict(amount).get("currency"))
        if currency:
            return currency.upper()
    return None


def _map_item(item: dict[str, Any], currency: str) -> OrderItem:
    quantity = item.get("quantity")
    if isinstance(quantity, bool) or quantity is None:
        raise OrderMappingError(f"item {item.get('id')!r}: no quantity")
    sku = text_or_none(item.get("retailer_id"))
    return OrderItem(
        sku=sku,
        name=text_or_none(item.get("product_name"))
        or sku
        or text_or_none(item.get("id"))
        or "item",
        quantity=int(str(quantity)),
        unit_price=money(item.get("price_per_unit"), currency),
        external_item_id=text_or_none(item.get("id")),
        external_product_id=text_or_none(item.get("product_id")),
    )


def _map_address(value: object) -> Address | None:
    if not isinstance(value, dict) or not value:
        return None
    parts = {
        key: text_or_none(value.get(key))
        for key in ("name", "street1", "street2", "city", "state", "postal_code", "country")
    }
    full = ", ".join(
        p
        for p in (
            parts["street1"],
            parts["street2"],
            parts["city"],
            parts["state"],
            parts["postal_code"],
            parts["country"],
        )
        if p
    )
    return Address(
        name=parts["name"],
        line1=parts["street1"],
        line2=parts["street2"],
        city=parts["city"],
        state=parts["state"],
        postal_code=parts["postal_code"],
        country=parts["country"],
        full_address=full or None,
    )


# --- products ------------------------------------------------------------------------------

_PRICE_CHARS = re.compile(r"[^0-9.,]")


def display_price(value: object) -> Decimal | None:
    """Catalog reads give `price` as a display string ("฿1,234.50", "THB1,234.50"); the exact
    format is not documented, so anything but digits and separators is dropped."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value))
    text = _PRICE_CHARS.sub("", str(value))
    if not text:
        return None
    if "," in text and ("." not in text or text.rfind(",") > text.rfind(".")):
        # "1.234,50": comma as the decimal separator.
        text = text.replace(".", "").replace(",", ".")
    else:
        text = text.replace(",", "")
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def _stock(item: Mapping[str, Any]) -> int | None:
    for key in ("quantity_to_sell_on_facebook", "inventory"):
        value = item.get(key)
        if value is not None and not isinstance(value, bool):
            try:
                return int(str(value))
            except ValueError:
                continue
    return None


def map_products(items: Iterable[dict[str, Any]]) -> list[NormalizedProduct]:
    """Catalog items are variants; those sharing `retailer_product_group_id` form a product."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        group = _dict(item.get("product_group"))
        key = (
            text_or_none(item.get("retailer_product_group_id"))
            or text_or_none(group.get("retailer_id"))
            or text_or_none(group.get("id"))
            or text_or_none(item.get("id"))
        )
        if key is None:
            continue
        groups.setdefault(key, []).append(item)
    return [_map_group(key, members) for key, members in groups.items()]


def _common_prefix(names: list[str]) -> str:
    shortest = min(names, key=len, default="")
    for index, char in enumerate(shortest):
        if any(name[index] != char for name in names):
            return shortest[:index]
    return shortest


def _map_group(key: str, members: list[dict[str, Any]]) -> NormalizedProduct:
    names = [text_or_none(m.get("name")) or "" for m in members]
    common = _common_prefix(names).rstrip(" -/(") if len(members) > 1 else names[0]
    name = common or names[0] or key
    variations = []
    for member, member_name in zip(members, names, strict=True):
        rest = member_name[len(common) :].strip(" -/()") if common else member_name
        variations.append(
            ProductVariation(
                external_variation_id=text_or_none(member.get("id")),
                sku=text_or_none(member.get("retailer_id")),
                name=rest or member_name or None,
                price=display_price(member.get("price")),
                stock=_stock(member),
            )
        )
    first = members[0]
    return NormalizedProduct(
        external_product_id=key,
        name=name,
        status=text_or_none(first.get("availability"))
        or text_or_none(first.get("visibility"))
        or "unknown",
        currency=text_or_none(first.get("currency")),
        updated_at=None,
        variations=variations,
        raw={"items": members},
    )


# --- buyer data ------------------------------------------------------------------------------

# Fields of a commerce order that identify the buyer: `buyer_details` {name, email, ...} and
# the shipping address (the recipient's name and street).
BUYER_FIELDS = frozenset({"buyer_details", "shipping_address"})


def erase_buyer_data(raw: dict[str, Any]) -> dict[str, Any]:
    """The stored payload without its buyer fields; everything else is kept as received."""
    return {key: value for key, value in raw.items() if key not in BUYER_FIELDS}
