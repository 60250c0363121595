"""A simulated Shopee Open Platform v2 that speaks the wire protocol the Shopee client uses.

Paths, parameters, envelopes (`{request_id, error, message, response}`) and error codes follow
`reference/marketplace-apis.md` §1. Every call's signature and timestamp are checked; access
tokens expire and refresh tokens work once. Orders and products come from a deterministic
`SeededShop`. Control endpoints under `/_sandbox/` create shops, inject faults, change orders,
expire tokens and send signed code-3 pushes.

The signing code here is written independently of the client's on purpose, so a contract test
proves the client signs as Shopee does rather than as the sandbox happens to.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import hmac
import json
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.sandbox import shopee_reviews
from app.sandbox.common import Faults, JSONResponse, TokenRegistry, apply_faults, read_json_or_none
from app.sandbox.seed import STATUSES, SeededShop, SeedOrder, SeedProduct

TIMESTAMP_TOLERANCE = 300
MAX_WINDOW_SECONDS = 15 * 86400
WEBHOOK_TIMEOUT_SECONDS = 3.0  # Shopee wants a 2xx within 3 s (reference §1.8)

# Neutral seed status -> Shopee status; "pending" is spread over Shopee's three waiting states
# so a seeded shop shows every Shopee status.
_RAW_STATUS = {
    "unpaid": "UNPAID",
    "pending": "READY_TO_SHIP",
    "ready_to_ship": "PROCESSED",
    "shipped": "SHIPPED",
    "delivered": "TO_CONFIRM_RECEIVE",
    "completed": "COMPLETED",
    "cancelling": "IN_CANCEL",
    "cancelled": "CANCELLED",
    "returned": "TO_RETURN",
    "failed": "RETRY_SHIP",
}
_NEUTRAL_STATUS = {raw: neutral for neutral, raw in _RAW_STATUS.items()} | {
    "PENDING": "pending",
    "INVOICE_PENDING": "pending",
}
_SHIPPED_STATES = {"shipped", "delivered", "completed", "returned", "failed"}
_PAYMENT_METHODS = {
    "COD": "Cash on Delivery",
    "CREDIT_CARD": "Credit Card/Debit Card",
    "BANK_TRANSFER": "Bank Transfer",
    "SHOPEEPAY": "ShopeePay",
    "PROMPTPAY": "PromptPay QR",
}
_CARRIERS = ("Kerry Express", "Flash Express", "J&T Express", "Thailand Post")
_ITEM_STATUSES = {"NORMAL", "BANNED", "UNLIST", "REVIEWING", "SELLER_DELETE", "SHOPEE_DELETE"}
_B36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_CENT = Decimal("0.01")

Level = Literal["public", "shop"]


class ShopeeApiError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def _param_error(message: str) -> ShopeeApiError:
    return ShopeeApiError("error_param", message)


# --- signing (independent of the client) -----------------------------------------------------


def expected_sign(
    partner_key: str, partner_id: int, path: str, ts: int, token: str = "", shop_id: str = ""
) -> str:
    message = f"{partner_id}{path}{ts}{token}{shop_id}".encode()
    return hmac.new(partner_key.encode(), message, hashlib.sha256).hexdigest()


def push_authorization(partner_key: str, url: str, body: bytes) -> str:
    return hmac.new(partner_key.encode(), url.encode() + b"|" + body, hashlib.sha256).hexdigest()


# --- state -----------------------------------------------------------------------------------


@dataclass
class ShopeeShop:
    shop_id: int
    partner_id: int
    partner_key: str
    seeded: SeededShop
    name: str
    item_status: dict[int, str] = field(default_factory=dict)
    unpushed: list[int] = field(default_factory=list)  # order ids changed since the last push
    # order_sn by index: it depends only on creation, which never changes, so a list page
    # need not regenerate the order.
    sns: dict[int, str] = field(default_factory=dict, repr=False)
    _has_model: dict[int, bool] | None = field(default=None, repr=False)

    def has_model(self, product_id: int) -> bool:
        if self._has_model is None:
            self._has_model = {p.product_id: len(p.variations) > 1 for p in self.seeded.products}
        return self._has_model.get(product_id, True)

    def order_sn(self, index: int) -> str:
        sn = self.sns.get(index)
        if sn is None:
            sn = self.sns[index] = order_sn(self.seeded.order(index))
        return sn


@dataclass
class ShopeeSandbox:
    shops: dict[int, ShopeeShop] = field(default_factory=dict)
    tokens: TokenRegistry = field(default_factory=TokenRegistry)
    faults: Faults = field(default_factory=Faults)
    # Where pushes go; tests put an ASGI transport here, None means the network.
    webhook_transport: httpx.AsyncBaseTransport | None = None
    calls: Counter[str] = field(default_factory=Counter)
    clock: Callable[[], float] = time.time
    # Pushes "lost" on the way (get_lost_push_message serves them), by partner id.
    lost_pushes: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    lost_push_seq: int = 0

    def lose_push(self, shop: ShopeeShop, body: bytes) -> None:
        """Keep a push as Shopee keeps an undelivered one: `data` as a JSON string."""
        push = json.loads(body)
        self.lost_push_seq += 1
        self.lost_pushes.setdefault(shop.partner_id, []).append(
            {
                "message_id": self.lost_push_seq,
                "shop_id": push["shop_id"],
                "code": push["code"],
                "timestamp": push["timestamp"],
                "data": json.dumps(push["data"], separators=(",", ":"), ensure_ascii=False),
            }
        )

    def partner_key(self, partner_id: int) -> str | None:
        for shop in self.shops.values():
            if shop.partner_id == partner_id:
                return shop.partner_key
        return None

    def add_shop(
        self,
        *,
        shop_id: int | None = None,
        seed: str = "shopee",
        order_count: int = 0,
        days: float = 60,
        product_count: int = 20,
        name: str | None = None,
        partner_id: int | None = None,
        partner_key: str | None = None,
    ) -> dict[str, str]:
        """Create a seeded shop with its own partner app; returns connection credentials."""
        shop_id = shop_id or 100_000 + len(self.shops) + secrets.randbelow(800_000)
        if shop_id in self.shops:
            raise ValueError(f"shop {shop_id} exists")
        end = datetime.now(UTC)
        seeded = SeededShop(
            seed=seed,
            order_count=order_count,
            start=end - timedelta(days=days),
            end=end,
            product_count=product_count,
        )
        shop = ShopeeShop(
            shop_id=shop_id,
            partner_id=partner_id or 2_000_000 + secrets.randbelow(1_000_000),
            partner_key=partner_key or secrets.token_hex(32),
            seeded=seeded,
            name=name or f"ร้าน {seed} (Shopee sandbox)",
        )
        # Some listings unlisted, as in a real shop.
        shop.item_status = {p.product_id: "UNLIST" for p in seeded.products[5::7]}
        self.shops[shop_id] = shop
        # Builds the shop's update-time index now, so the first sync does not pay for it.
        seeded.updated_between(seeded.end, seeded.end)
        access, refresh = self.tokens.issue(str(shop_id))
        return {
            "platformCode": "shopee",
            "shopId": str(shop_id),
            "shopName": shop.name,
            "apiKey": str(shop.partner_id),
            "apiSecret": shop.partner_key,
            "accessToken": access.value,
            "refreshToken": refresh.value,
        }

    def change_orders(
        self,
        shop: ShopeeShop,
        *,
        fraction: float | None = None,
        order_sns: list[str] | None = None,
        status: str | None = None,
    ) -> list[SeedOrder]:
        neutral = _NEUTRAL_STATUS.get(status, status) if status else None
        if neutral is not None and neutral not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        seeded = shop.seeded
        if order_sns is not None:
            indexes = []
            for order_sn in order_sns:
                order = find_order(shop, order_sn)
                if order is None:
                    raise KeyError(order_sn)
                indexes.append(order.index)
            changed = [seeded.touch(i, status=neutral) for i in indexes]
        elif neutral is not None and fraction:
            step = max(1, round(1 / fraction))
            changed = [seeded.touch(i, status=neutral) for i in range(0, seeded.order_count, step)]
        else:
            changed = seeded.change_fraction(fraction or 0)
        shop.unpushed.extend(o.order_id for o in changed)
        return changed


# --- rendering -------------------------------------------------------------------------------


def order_sn(order: SeedOrder) -> str:
    """Shopee order numbers look like `201214JAJXU6G7`: creation date plus 8 characters."""
    number, digits = order.order_id, ""
    while number:
        number, rest = divmod(number, 36)
        digits = _B36[rest] + digits
    return f"{order.created_at:%y%m%d}{digits.rjust(8, '0')}"


def find_order(shop: ShopeeShop, sn: str) -> SeedOrder | None:
    if len(sn) != 14:
        return None
    try:
        order_id = int(sn[6:], 36)
    except ValueError:
        return None
    order = shop.seeded.get(order_id)
    return order if order is not None and shop.order_sn(order.index) == sn else None


def raw_status(order: SeedOrder, pending_supported: bool) -> str:
    if order.status == "pending":
        variant = order.order_id % 10
        if variant == 0:
            return "INVOICE_PENDING"
        if variant == 1 and pending_supported:
            return "PENDING"
    return _RAW_STATUS[order.status]


def _ts(moment: datetime) -> int:
    return int(moment.timestamp())


def _render_items(order: SeedOrder, shop: ShopeeShop) -> list[dict[str, Any]]:
    items = []
    for item in order.items:
        has_model = shop.has_model(item.product_id)
        unit_discounted = (item.unit_price - item.discount / item.quantity).quantize(
            _CENT, ROUND_HALF_UP
        )
        items.append(
            {
                "item_id": item.product_id,
                "item_name": item.name,
                "item_sku": "" if has_model else item.sku,
                "model_id": item.variation_id if has_model else 0,
                "model_name": item.variation if has_model else "",
                "model_sku": item.sku if has_model else "",
                "model_quantity_purchased": item.quantity,
                "model_original_price": float(item.unit_price),
                "model_discounted_price": float(unit_discounted),
                "order_item_id": item.line_id,
                "promotion_type": "" if item.discount == 0 else "product_promotion",
                "promotion_id": 0,
                "add_on_deal": False,
                "main_item": False,
                "is_wholesale": False,
                "weight": 0.5,
            }
        )
    return items


def render_order(
    order: SeedOrder, shop: ShopeeShop, fields: set[str], pending_supported: bool
) -> dict[str, Any]:
    """An order in get_order_detail's shape: default fields plus the requested optional ones."""
    status = raw_status(order, pending_supported)
    shipped = order.status in _SHIPPED_STATES
    rendered: dict[str, Any] = {
        "order_sn": shop.order_sn(order.index),
        "region": "TH",
        "currency": order.currency,
        "cod": order.is_cod,
        "order_status": status,
        "message_to_seller": "",
        "create_time": _ts(order.created_at),
        "update_time": _ts(order.updated_at),
        "days_to_ship": 2,
        "ship_by_date": _ts(order.created_at + timedelta(days=2)),
        "booking_sn": "",
    }
    if status == "PENDING":
        rendered["pending_terms"] = ["SYSTEM_PENDING"]
    address = order.address
    optional: dict[str, Callable[[], Any]] = {
        "buyer_user_id": lambda: 10_000_000 + order.index,
        "buyer_username": lambda: f"buyer_{order.index}",
        "recipient_address": lambda: {
            "name": address.name,
            "phone": address.phone,
            "town": "",
            "district": "",
            "city": address.district,
            "state": address.province,
            "region": address.country,
            "zipcode": address.postal_code,
            "full_address": (
                f"{address.line1}, {address.district}, {address.province}, {address.postal_code}"
            ),
        },
        "item_list": lambda: _render_items(order, shop),
        "estimated_shipping_fee": lambda: float(order.shipping_fee),
        "actual_shipping_fee": lambda: float(order.shipping_fee) if shipped else 0.0,
        "actual_shipping_fee_confirmed": lambda: shipped,
        "payment_method": lambda: _PAYMENT_METHODS.get(order.payment_method, "Others"),
        "shipping_carrier": lambda: _CARRIERS[order.index % len(_CARRIERS)],
        "note": lambda: "",
        "cancel_by": lambda: "buyer" if order.status == "cancelled" else "",
        "cancel_reason": lambda: (
            "Need to change delivery address" if order.status == "cancelled" else ""
        ),
        "buyer_cancel_reason": lambda: "",
    }
    for name in fields & optional.keys():
        rendered[name] = optional[name]()
    if "package_list" in fields:
        from app.sandbox.shopee_fulfillment import package_list

        rendered["package_list"] = package_list(shop, order)
    # total_amount and pay_time exist only once the buyer has paid (reference §1.5).
    if "total_amount" in fields and status != "UNPAID":
        rendered["total_amount"] = float(order.total)
    if "pay_time" in fields and order.paid_at is not None:
        rendered["pay_time"] = _ts(order.paid_at)
    return rendered


def _price_info(price: Decimal, currency: str = "THB") -> list[dict[str, Any]]:
    return [{"currency": currency, "original_price": float(price), "current_price": float(price)}]


def _stock_info(stock: int) -> dict[str, Any]:
    return {
        "summary_info": {"total_reserved_stock": 0, "total_available_stock": stock},
        "seller_stock": [{"location_id": "", "stock": stock, "if_saleable": True}],
    }


def render_item(product: SeedProduct, shop: ShopeeShop) -> dict[str, Any]:
    has_model = len(product.variations) > 1
    item: dict[str, Any] = {
        "item_id": product.product_id,
        "category_id": 100_001,
        "item_name": product.name,
        "item_sku": "" if has_model else product.variations[0].sku,
        "create_time": _ts(shop.seeded.start),
        "update_time": _ts(product.updated_at),
        "item_status": shop.item_status.get(product.product_id, "NORMAL"),
        "has_model": has_model,
        "condition": "NEW",
        "stock_info_v2": _stock_info(sum(v.stock for v in product.variations)),
    }
    if not has_model:
        item["price_info"] = _price_info(product.variations[0].price)
    return item


def render_models(product: SeedProduct) -> dict[str, Any]:
    return {
        "tier_variation": [
            {"name": "ตัวเลือก", "option_list": [{"option": v.name} for v in product.variations]}
        ],
        "model": [
            {
                "model_id": v.variation_id,
                "model_sku": v.sku,
                "tier_index": [i],
                "model_status": "MODEL_NORMAL",
                "price_info": _price_info(v.price),
                "stock_info_v2": _stock_info(v.stock),
            }
            for i, v in enumerate(product.variations)
        ],
    }


# --- request context and envelope ------------------------------------------------------------


@dataclass
class Call:
    request: Request
    query: Mapping[str, str]
    body: Any
    shop: ShopeeShop | None
    partner_id: int

    @property
    def the_shop(self) -> ShopeeShop:
        assert self.shop is not None
        return self.shop


Handler = Callable[[ShopeeSandbox, Call], Awaitable[dict[str, Any] | Response]]


def _envelope(payload: dict[str, Any]) -> dict[str, Any]:
    return {"request_id": secrets.token_hex(16), "error": "", "message": "", **payload}


def _error_response(error: ShopeeApiError) -> JSONResponse:
    body = {"request_id": secrets.token_hex(16), "error": error.code, "message": error.message}
    return JSONResponse(body, status_code=error.status)


def _rate_limited() -> Response:
    return _error_response(
        ShopeeApiError(
            "error_rate_limit",
            "Too many requests. You have reached the rate limit. Please try again later.",
            429,
        )
    )


def _server_error() -> Response:
    return _error_response(
        ShopeeApiError("error_server", "System error. Please try again later.", 500)
    )


def _int_param(query: Mapping[str, str], name: str, *, required: bool = True) -> int | None:
    value = query.get(name)
    if value is None or value == "":
        if required:
            raise _param_error(f"There is no {name} in query.")
        return None
    try:
        return int(value)
    except ValueError:
        raise _param_error(f"Invalid {name}.") from None


def _authenticate(
    state: ShopeeSandbox, call_query: Mapping[str, str], path: str, level: Level
) -> tuple[int, ShopeeShop | None]:
    partner_id = _int_param(call_query, "partner_id")
    ts = _int_param(call_query, "timestamp")
    assert partner_id is not None and ts is not None
    if abs(state.clock() - ts) > TIMESTAMP_TOLERANCE:
        raise _param_error("Timestamp is expired.")
    signature = call_query.get("sign")
    if not signature:
        raise _param_error("There is no sign in query.")
    key = state.partner_key(partner_id)
    if key is None:
        raise ShopeeApiError("error_auth", "partner_id is invalid", 403)
    if level == "public":
        expected = expected_sign(key, partner_id, path, ts)
    else:
        token = call_query.get("access_token")
        if not token:
            raise _param_error("There is no access_token in query.")
        shop_id = _int_param(call_query, "shop_id")
        expected = expected_sign(key, partner_id, path, ts, token, str(shop_id))
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise ShopeeApiError("error_sign", "Wrong sign.", 403)
    if level == "public":
        return partner_id, None
    shop = state.shops.get(shop_id or 0)
    if shop is None or shop.partner_id != partner_id:
        raise ShopeeApiError("error_auth", "Invalid partner_id or shopid.", 403)
    if state.faults.expire_tokens_next > 0:
        state.faults.expire_tokens_next -= 1
        state.tokens.expire_all()
    issued = state.tokens.check_access(token)
    if issued is None or issued.shop_key != str(shop.shop_id):
        raise ShopeeApiError("error_auth", "Invalid access_token.", 403)
    return partner_id, shop


def _endpoint(
    state: ShopeeSandbox, path: str, level: Level, handler: Handler
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        state.calls[path] += 1
        injected = await apply_faults(
            state.faults, rate_limited=_rate_limited, server_error=_server_error
        )
        if injected is not None:
            return injected
        try:
            partner_id, shop = _authenticate(state, request.query_params, path, level)
            body: Any = None
            if request.method == "POST":
                body = await read_json_or_none(request)
                if not isinstance(body, dict):
                    raise _param_error("Wrong parameters, detail: body is not a JSON object.")
            call = Call(request, request.query_params, body, shop, partner_id)
            answer = await handler(state, call)
            # A shipping document download answers the file itself.
            return answer if isinstance(answer, Response) else JSONResponse(_envelope(answer))
        except ShopeeApiError as error:
            return _error_response(error)

    return endpoint


# --- API handlers ----------------------------------------------------------------------------


def _cursor(query: tuple[int, int, str], offset: int) -> str:
    raw = f"{query[0]}:{query[1]}:{query[2]}:{offset}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_offset(cursor: str, query: tuple[int, int, str]) -> int:
    if not cursor:
        return 0
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        time_from, time_to, field_name, offset = (
            base64.urlsafe_b64decode(padded).decode().split(":")
        )
        if (int(time_from), int(time_to), field_name) != query:
            raise ValueError
        return int(offset)
    except ValueError:
        raise _param_error("Wrong parameters, detail: invalid cursor.") from None


def _range_page(
    shop: ShopeeShop,
    field_name: str,
    time_from: int,
    time_to: int,
    offset: int,
    page_size: int,
    status_filter: str | None,
    pending_supported: bool,
) -> tuple[list[int], bool]:
    """One page of order indexes with time_from <= time <= time_to (both ends included),
    and whether more follow."""
    start = datetime.fromtimestamp(time_from, UTC)
    end = datetime.fromtimestamp(time_to + 1, UTC)
    seeded = shop.seeded
    if field_name == "update_time" and not status_filter:
        # The shop's own sorted (update time, index) list: a page costs a bisect, not a scan.
        by_update = seeded.update_index()
        lo = bisect.bisect_left(by_update, (start, -1))
        hi = bisect.bisect_left(by_update, (end, -1))
        first = lo + offset
        page = [i for _, i in by_update[first : min(hi, first + page_size)]]
        return page, first + page_size < hi
    if field_name == "update_time":
        orders = seeded.updated_between(start, end)
    else:
        orders = seeded.created_between(start, end)
    indexes = [
        o.index
        for o in orders
        if not status_filter or raw_status(o, pending_supported) == status_filter
    ]
    return indexes[offset : offset + page_size], offset + page_size < len(indexes)


async def get_order_list(state: ShopeeSandbox, call: Call) -> dict[str, Any]:
    q = call.query
    field_name = q.get("time_range_field", "")
    if field_name not in {"create_time", "update_time"}:
        raise _param_error("Wrong parameters, detail: time_range_field is invalid.")
    time_from, time_to = _int_param(q, "time_from"), _int_param(q, "time_to")
    page_size = _int_param(q, "page_size")
    assert time_from is not None and time_to is not None and page_size is not None
    if time_from > time_to or time_to - time_from > MAX_WINDOW_SECONDS:
        raise ShopeeApiError(
            "order.order_list_invalid_time",
            "Start time must be earlier than end time and diff in 15days.",
        )
    if not 1 <= page_size <= 100:
        raise _param_error("Wrong parameters, detail: page_size should be between 1 and 100.")
    query = (time_from, time_to, field_name)
    offset = _cursor_offset(q.get("cursor", ""), query)
    shop = call.the_shop
    pending_supported = q.get("request_order_status_pending", "").lower() == "true"
    page, more = _range_page(
        shop,
        field_name,
        time_from,
        time_to,
        offset,
        page_size,
        q.get("order_status") or None,
        pending_supported,
    )
    with_status = "order_status" in q.get("response_optional_fields", "")
    order_list = []
    for i in page:
        entry: dict[str, Any] = {"order_sn": shop.order_sn(i)}
        if with_status:
            entry["order_status"] = raw_status(shop.seeded.order(i), pending_supported)
        order_list.append(entry)
    return {
        "response": {
            "more": more,
            "next_cursor": _cursor(query, offset + page_size) if more else "",
            "order_list": order_list,
        }
    }


async def get_order_detail(state: ShopeeSandbox, call: Call) -> dict[str, Any]:
    raw_list = call.query.get("order_sn_list", "")
    sns = [sn.strip() for sn in raw_list.split(",") if sn.strip()]
    if not 1 <= len(sns) <= 50:
        raise _param_error("Wrong parameters, detail: order_sn_list should be between 1 and 50.")
    fields = {f.strip() for f in call.query.get("response_optional_fields", "").split(",")}
    pending_supported = call.query.get("request_order_status_pending", "").lower() == "true"
    shop = call.the_shop
    orders = []
    for sn in sns:
        order = find_order(shop, sn)
        if order is not None:
            orders.append(render_order(order, shop, fields, pending_supported))
    return {"response": {"order_list": orders}}


async def get_shop_info(state: ShopeeSandbox, call: Call) -> dict[str, Any]:
    shop = call.the_shop
    # This endpoint answers at the top level (INTERFACE.md, shop check).
    return {
        "shop_name": shop.name,
        "region": "TH",
        "status": "NORMAL",
        "is_cb": False,
        "is_sip": False,
        "auth_time": _ts(shop.seeded.start),
        "expire_time": _ts(shop.seeded.end + timedelta(days=365)),
    }


def _product(shop: ShopeeShop, item_id: object) -> SeedProduct | None:
    for product in shop.seeded.products:
        if product.product_id == item_id:
            return product
    return None


async def get_item_list(state: ShopeeSandbox, call: Call) -> dict[str, Any]:
    offset = _int_param(call.query, "offset", required=False) or 0
    page_size = _int_param(call.query, "page_size")
    assert page_size is not None
    if not 1 <= page_size <= 100:
        raise _param_error("Wrong parameters, detail: page_size should be between 1 and 100.")
    statuses = set(call.request.query_params.getlist("item_status"))
    if not statuses or not statuses <= _ITEM_STATUSES:
        raise _param_error("Wrong parameters, detail: item_status is invalid.")
    shop = call.the_shop
    products = [
        p for p in shop.seeded.products if shop.item_status.get(p.product_id, "NORMAL") in statuses
    ]
    page = products[offset : offset + page_size]
    has_next = offset + page_size < len(products)
    return {
        "response": {
            "item": [
                {
                    "item_id": p.product_id,
                    "item_status": shop.item_status.get(p.product_id, "NORMAL"),
                    "update_time": _ts(p.updated_at),
                }
                for p in page
            ],
            "total_count": len(products),
            "has_next_page": has_next,
            "next_offset": offset + page_size if has_next else 0,
        }
    }


async def get_item_base_info(state: ShopeeSandbox, call: Call) -> dict[str, Any]:
    raw = call.query.get("item_id_list", "").strip("[]")
    try:
        ids = [int(part) for part in raw.replace(" ", ",").split(",") if part]
    except ValueError:
        raise _param_error("Wrong parameters, detail: item_id_list is invalid.") from None
    if not 1 <= len(ids) <= 50:
        raise _param_error("Wrong parameters, detail: item_id_list should be between 1 and 50.")
    shop = call.the_shop
    items = [render_item(p, shop) for i in ids if (p := _product(shop, i)) is not None]
    return {"response": {"item_list": items}}


async def get_model_list(state: ShopeeSandbox, call: Call) -> dict[str, Any]:
    product = _product(call.the_shop, _int_param(call.query, "item_id"))
    if product is None:
        raise ShopeeApiError("error_item_not_found", "Item_id is not found.")
    if len(product.variations) < 2:
        return {"response": {"tier_variation": [], "model": []}}
    return {"response": render_models(product)}


async def update_stock(state: ShopeeSandbox, call: Call) -> dict[str, Any]:
    shop = call.the_shop
    product = _product(shop, call.body.get("item_id"))
    if product is None:
        raise ShopeeApiError("error_item_not_found", "Item_id is not found.")
    stock_list = call.body.get("stock_list")
    if not isinstance(stock_list, list) or not 1 <= len(stock_list) <= 50:
        raise _param_error("Wrong parameters, detail: stock_list length should be 1 to 50.")
    has_model = len(product.variations) > 1
    by_id = {v.variation_id: v for v in product.variations}
    success, failure = [], []
    for entry in stock_list:
        model_id = entry.get("model_id", 0) if isinstance(entry, dict) else None
        seller_stock = entry.get("seller_stock") if isinstance(entry, dict) else None
        if not isinstance(model_id, int) or not isinstance(seller_stock, list) or not seller_stock:
            raise _param_error("Wrong parameters, detail: seller_stock is required.")
        stocks: list[int] = [
            s["stock"] for s in seller_stock if isinstance(s, dict) and type(s.get("stock")) is int
        ]
        if len(stocks) != len(seller_stock):
            raise _param_error("Wrong parameters, detail: stock must be an integer.")
        total = sum(stocks)
        variation = by_id.get(model_id) if has_model else product.variations[0]
        if has_model and model_id == 0:
            reason = "Can't to edit item stock directly while item has models."
        elif variation is None or (not has_model and model_id != 0):
            reason = "Model_id is not found."
        elif total < 0:
            reason = "Stock should be larger than reserved stock."
        elif variation.sku in shop.seeded.campaign_locked:
            reason = "Item is in promotion, stock can not be edited during the promotion period."
        else:
            if not state.faults.ignore_stock_updates:
                variation.stock = total
                product.updated_at = datetime.now(UTC).replace(microsecond=0)
            success.append({"model_id": model_id, "location_id": "", "stock": total})
            continue
        failure.append({"model_id": model_id, "failed_reason": reason})
    return {"response": {"success_list": success, "failure_list": failure}}


async def refresh_access_token(state: ShopeeSandbox, call: Call) -> dict[str, Any]:
    body = call.body
    refresh_token, partner_id, shop_id = (
        body.get("refresh_token"),
        body.get("partner_id"),
        body.get("shop_id"),
    )
    if not isinstance(refresh_token, str) or not refresh_token:
        raise _param_error("Wrong parameters, detail: refresh_token is required.")
    if partner_id != call.partner_id:
        raise _param_error("Wrong parameters, detail: partner_id does not match the query.")
    shop = state.shops.get(shop_id) if isinstance(shop_id, int) else None
    if shop is None or shop.partner_id != call.partner_id:
        raise ShopeeApiError("error_auth", "Invalid partner_id or shopid.", 403)
    issued = state.tokens.use_refresh(refresh_token)
    if issued is None or issued[0].shop_key != str(shop.shop_id):
        raise ShopeeApiError("error_auth", "Invalid refresh_token.", 403)
    access, refresh = issued
    # Auth endpoints answer at the top level (reference §1.4).
    return {
        "access_token": access.value,
        "refresh_token": refresh.value,
        "expire_in": state.tokens.access_ttl_seconds,
        "partner_id": call.partner_id,
        "shop_id": shop.shop_id,
    }


LOST_PUSH_PAGE = 100


async def get_lost_push_message(state: ShopeeSandbox, call: Call) -> dict[str, Any]:
    """The earliest unconfirmed lost pushes of the partner (at most 100)."""
    pending = state.lost_pushes.get(call.partner_id, [])
    page = pending[:LOST_PUSH_PAGE]
    return {
        "response": {
            "push_message_list": [
                {k: v for k, v in message.items() if k != "message_id"} for message in page
            ],
            "has_next_page": len(pending) > LOST_PUSH_PAGE,
            "last_message_id": page[-1]["message_id"] if page else 0,
        }
    }


async def confirm_consumed_lost_push_message(state: ShopeeSandbox, call: Call) -> dict[str, Any]:
    last = call.body.get("last_message_id")
    if type(last) is not int:
        raise _param_error("Wrong parameters, detail: last_message_id is required.")
    pending = state.lost_pushes.get(call.partner_id, [])
    state.lost_pushes[call.partner_id] = [m for m in pending if m["message_id"] > last]
    return {"response": {}}


API: tuple[tuple[str, str, Level, Handler], ...] = (
    ("GET", "/api/v2/order/get_order_list", "shop", get_order_list),
    ("GET", "/api/v2/order/get_order_detail", "shop", get_order_detail),
    ("GET", "/api/v2/shop/get_shop_info", "shop", get_shop_info),
    ("GET", "/api/v2/product/get_item_list", "shop", get_item_list),
    ("GET", "/api/v2/product/get_item_base_info", "shop", get_item_base_info),
    ("GET", "/api/v2/product/get_model_list", "shop", get_model_list),
    ("POST", "/api/v2/product/update_stock", "shop", update_stock),
    ("POST", "/api/v2/auth/access_token/get", "public", refresh_access_token),
    ("GET", "/api/v2/push/get_lost_push_message", "public", get_lost_push_message),
    (
        "POST",
        "/api/v2/push/confirm_consumed_lost_push_message",
        "public",
        confirm_consumed_lost_push_message,
    ),
    *shopee_reviews.API,
)


# --- control endpoints -----------------------------------------------------------------------


def _control_error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": "sandbox_error", "message": message}, status_code=status)


async def _json_object(request: Request) -> dict[str, Any] | None:
    body = await read_json_or_none(request)
    return body if isinstance(body, dict) else None


def _shop_of(state: ShopeeSandbox, body: Mapping[str, Any]) -> ShopeeShop | None:
    try:
        return state.shops.get(int(body.get("shopId", 0)))
    except (TypeError, ValueError):
        return None


def _control_routes(state: ShopeeSandbox) -> list[Route]:
    async def create_shop(request: Request) -> Response:
        body = await _json_object(request)
        if body is None:
            return _control_error("body must be a JSON object")
        try:
            credentials = state.add_shop(
                shop_id=int(body["shopId"]) if body.get("shopId") else None,
                seed=str(body.get("seed", "shopee")),
                order_count=int(body.get("orderCount", 0)),
                days=float(body.get("days", 60)),
                product_count=int(body.get("productCount", 20)),
                name=body.get("shopName"),
            )
        except (TypeError, ValueError) as exc:
            return _control_error(str(exc))
        return JSONResponse(credentials, status_code=201)

    async def set_faults(request: Request) -> Response:
        body = await _json_object(request)
        if body is None:
            return _control_error("body must be a JSON object")
        if body.pop("reset", False):
            state.faults.reset()
        try:
            state.faults.update(body)
        except (KeyError, TypeError, ValueError) as exc:
            return _control_error(f"unknown or invalid fault setting {exc}")
        public = {k: v for k, v in vars(state.faults).items() if not k.startswith("_")}
        return JSONResponse(public)

    async def change_orders(request: Request) -> Response:
        body = await _json_object(request)
        shop = _shop_of(state, body or {})
        if body is None or shop is None:
            return _control_error("unknown shopId", 404)
        order_ids = body.get("orderIds")
        try:
            changed = state.change_orders(
                shop,
                fraction=float(body["fraction"]) if body.get("fraction") is not None else None,
                order_sns=[str(o) for o in order_ids] if order_ids is not None else None,
                status=body.get("status"),
            )
        except KeyError as exc:
            return _control_error(f"unknown order {exc}", 404)
        except (TypeError, ValueError) as exc:
            return _control_error(str(exc))
        return JSONResponse(
            {"changed": [{"orderId": order_sn(o), "status": o.status} for o in changed]}
        )

    async def expire_tokens(request: Request) -> Response:
        state.tokens.expire_all()
        return JSONResponse({"expired": True})

    async def send_webhooks(request: Request) -> Response:
        body = await _json_object(request)
        shop = _shop_of(state, body or {})
        if body is None or shop is None:
            return _control_error("unknown shopId", 404)
        url = body.get("url")
        lost = bool(body.get("lost", False))
        if not lost and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
            return _control_error("url must be an http(s) URL")
        code = body.get("code", 3)
        if type(code) is not int or code not in PUSH_CODES:
            return _control_error(f"code must be one of {sorted(PUSH_CODES)}")
        bodies: list[tuple[str, bytes]]
        if code in ORDER_PUSH_CODES:
            if body.get("orderIds") is not None:
                orders = [find_order(shop, str(sn)) for sn in body["orderIds"]]
                if any(o is None for o in orders):
                    return _control_error("unknown order id", 404)
            else:
                orders = [shop.seeded.get(order_id) for order_id in dict.fromkeys(shop.unpushed)]
                shop.unpushed.clear()
            bodies = [(order_sn(o), push_body(shop, o, code=code)) for o in orders if o is not None]
        else:
            bodies = [(str(shop.shop_id), event_push_body(shop, code))]
        if lost:
            for _, raw in bodies:
                state.lose_push(shop, raw)
            return JSONResponse({"sent": 0, "lost": len(bodies)})
        assert isinstance(url, str)
        results = await send_pushes(state, shop, url, bodies)
        return JSONResponse({"sent": len(results), "results": results})

    return [
        Route("/_sandbox/shops", create_shop, methods=["POST"]),
        Route("/_sandbox/faults", set_faults, methods=["POST"]),
        Route("/_sandbox/orders/change", change_orders, methods=["POST"]),
        Route("/_sandbox/tokens/expire", expire_tokens, methods=["POST"]),
        Route("/_sandbox/webhooks/send", send_webhooks, methods=["POST"]),
    ]


# Codes the sandbox can push (reference §1.8): those naming an order, and the others.
ORDER_PUSH_CODES = frozenset({3, 4})
PUSH_CODES = frozenset({1, 2, 3, 4, 6, 8, 12})


def _encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def push_body(shop: ShopeeShop, order: SeedOrder, code: int = 3) -> bytes:
    """A code-3 (order status update, reference §1.8) or code-4 (tracking number) push."""
    data: dict[str, Any]
    if code == 4:
        data = {
            "ordersn": order_sn(order),
            "package_number": f"OFG{order.order_id}",
            "tracking_no": f"TH{order.order_id:012d}",
        }
    else:
        data = {
            "items": [],
            "ordersn": order_sn(order),
            "status": raw_status(order, True),
            "completed_scenario": "",
            "update_time": _ts(order.updated_at),
        }
    return _encode(
        {"data": data, "shop_id": shop.shop_id, "code": code, "timestamp": int(time.time())}
    )


def event_push_body(shop: ShopeeShop, code: int) -> bytes:
    """A push about the shop (authorization) or its items rather than one order."""
    now = int(time.time())
    product = shop.seeded.products[0] if shop.seeded.products else None
    item_id = product.product_id if product is not None else 0
    by_code: dict[int, dict[str, Any]] = {
        1: {"shop_id": shop.shop_id, "success": 1, "extra": "", "auth_time": now},
        2: {"shop_id": shop.shop_id, "success": 1, "extra": "", "cancel_time": now},
        6: {"item_id": item_id, "item_status": "BANNED", "reason": "sandbox"},
        8: {"item_id": item_id, "model_id": 0, "reserved_stock_change": 1},
        12: {"shop_id": shop.shop_id, "expire_before": now + 7 * 86400},
    }
    data = by_code[code]
    return _encode({"data": data, "shop_id": shop.shop_id, "code": code, "timestamp": now})


async def send_pushes(
    state: ShopeeSandbox, shop: ShopeeShop, url: str, bodies: list[tuple[str, bytes]]
) -> list[dict[str, Any]]:
    """Each (label, body) signed as Shopee signs pushes: over the URL, `|` and the raw body."""
    results: list[dict[str, Any]] = []
    async with httpx.AsyncClient(
        transport=state.webhook_transport, timeout=WEBHOOK_TIMEOUT_SECONDS
    ) as client:
        for label, body in bodies:
            headers = {
                "Content-Type": "application/json",
                "Authorization": push_authorization(shop.partner_key, url, body),
            }
            try:
                response = await client.post(url, content=body, headers=headers)
                results.append({"orderId": label, "statusCode": response.status_code})
            except httpx.HTTPError as exc:
                results.append({"orderId": label, "error": type(exc).__name__})
    return results


# --- app -------------------------------------------------------------------------------------


def create_app(state: ShopeeSandbox | None = None) -> Starlette:
    from app.sandbox import shopee_fulfillment as fulfillment

    state = state or ShopeeSandbox()
    routes = [
        Route(path, _endpoint(state, path, level, handler), methods=[method])
        for method, path, level, handler in (*API, *fulfillment.API)
    ] + [
        Route(path, fulfillment.control_endpoint(state, fn), methods=["POST"])
        for path, fn in fulfillment.CONTROL
    ]
    app = Starlette(routes=routes + _control_routes(state))
    app.state.shopee = state
    return app


def seed_demo(state: ShopeeSandbox) -> dict[str, str]:
    """A demo shop with a few months of orders; returns the credentials to connect it with."""
    return state.add_shop(seed="demo", order_count=2_000, days=90, name="ร้านเดโม่ Shopee")
