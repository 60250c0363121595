"""A Lazada Open Platform (Thailand) sandbox: the API host (`/rest/<api>`) and the auth host
(`/auth/rest/<api>`) in one ASGI app, speaking what `app.platforms.lazada` calls.

Mount it so that `LAZADA_BASE_URL = <mount>/rest` and `LAZADA_AUTH_URL = <mount>/auth/rest`.
Every call is checked like the real gateway: app key, `sign` (IncompleteSignature), timestamp
within 7200 s, access token (IllegalAccessToken); `/orders/get` enforces limit <= 100 and
offset <= 5000. Orders come from a `SeededShop`, rendered with one item row per unit and
Lazada statuses derived from the neutral seed status (`unit_statuses`). The app's state is
`app.state.sandbox`; control endpoints live under `/_sandbox/`.
"""

from __future__ import annotations

import bisect
import itertools
import json
import secrets
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_DOWN, Decimal
from typing import Any
from urllib.parse import parse_qsl

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.platforms.lazada.auth import push_signature, sign
from app.sandbox import lazada_fulfillment, lazada_reviews
from app.sandbox.common import Faults, JSONResponse, TokenRegistry, apply_faults, read_json_or_none
from app.sandbox.seed import STATUSES, SeededShop, SeedOrder, SeedProduct, SeedVariation

TH = timezone(timedelta(hours=7))
MAX_ORDERS_LIMIT = 100
MAX_OFFSET = 5000
TIMESTAMP_WINDOW_SECONDS = 7200
_CENT = Decimal("0.01")

# Neutral seed status -> the Lazada unit statuses it is shown as (picked by order index), so a
# seeded shop shows every status of the client's mapping table.
STATUS_VARIANTS: dict[str, tuple[str, ...]] = {
    "unpaid": ("unpaid",),
    "pending": ("pending", "topack", "repacked"),
    "ready_to_ship": ("ready_to_ship", "packed", "toship"),
    "shipped": ("shipped", "shipping"),
    "delivered": ("delivered",),
    "completed": ("confirmed",),
    "cancelling": ("pending",),  # Lazada has no "cancelling": one unit canceled, the rest wait
    "cancelled": ("canceled",),
    "returned": ("returned",),
    "failed": ("failed", "failed_delivery", "lost_by_3pl", "damaged_by_3pl"),
}
LAZADA_TO_NEUTRAL = {raw: neutral for neutral, raws in STATUS_VARIANTS.items() for raw in raws}
LAZADA_TO_NEUTRAL["pending"] = "pending"


class ApiError(Exception):
    def __init__(
        self,
        code: str,
        message: str,
        *,
        kind: str = "ISV",
        status: int = 200,
        detail: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.kind = kind
        self.status = status
        self.detail = detail


@dataclass
class LazadaShop:
    seller_id: str
    shop: SeededShop
    app_key: str
    app_secret: str
    name: str


# --- rendering (pure functions, also used by the tests' hypothesis strategies) ------------


def lazada_time(moment: datetime) -> str:
    return moment.astimezone(TH).strftime("%Y-%m-%d %H:%M:%S %z")


def _num(value: Decimal) -> float:
    # Lazada sends most amounts as JSON numbers; shortest float repr keeps 2-dp values exact.
    return float(value)


def _price_text(value: Decimal) -> str:
    return format(value, ",.2f") if value == value.quantize(_CENT) else format(value, ",f")


def _shares(total: Decimal, parts: int) -> list[Decimal]:
    """`total` split over `parts` units in cents, the remainder on the last unit."""
    base = (total / parts).quantize(_CENT, rounding=ROUND_DOWN)
    return [base] * (parts - 1) + [total - base * (parts - 1)]


def unit_statuses(order: SeedOrder) -> list[str]:
    """One Lazada status per unit, in the order of `render_items`."""
    units = sum(item.quantity for item in order.items)
    variants = STATUS_VARIANTS[order.status]
    statuses = [variants[order.index % len(variants)]] * units
    if order.status == "cancelling" and units > 1:
        statuses[0] = "canceled"
    elif order.status == "delivered" and units > 1 and order.index % 3 == 0:
        statuses[0] = "returned"  # a partly returned order
    return statuses


def render_items(order: SeedOrder) -> list[dict[str, Any]]:
    statuses = unit_statuses(order)
    rows: list[dict[str, Any]] = []
    created, updated = lazada_time(order.created_at), lazada_time(order.updated_at)
    for item in order.items:
        for unit, share in enumerate(_shares(item.discount, item.quantity)):
            rows.append(
                {
                    "order_item_id": item.line_id * 10 + unit,
                    "order_id": order.order_id,
                    "order_type": "Normal",
                    "name": item.name,
                    "sku": item.sku,
                    "shop_sku": f"{item.product_id}_TH-{item.variation_id}",
                    "sku_id": item.variation_id,
                    "product_id": item.product_id,
                    "variation": item.variation,
                    "item_price": _num(item.unit_price),
                    "paid_price": _num(item.unit_price - share),
                    "voucher_amount": _num(share),
                    "voucher_seller": _num(share),
                    "voucher_platform": 0.0,
                    "shipping_amount": _num(order.shipping_fee) if not rows else 0.0,
                    "currency": order.currency,
                    "status": statuses[len(rows)],
                    "is_digital": 0,
                    "tracking_code": "",
                    "shipment_provider": "",
                    "reason": "",
                    "created_at": created,
                    "updated_at": updated,
                }
            )
    return rows


def render_order(order: SeedOrder) -> dict[str, Any]:
    address = order.address
    statuses = unit_statuses(order)
    price = sum((i.unit_price * i.quantity for i in order.items), Decimal("0"))
    voucher = sum((i.discount for i in order.items), Decimal("0")) + order.voucher
    shipping = {
        "first_name": order.buyer_first_name,
        "last_name": order.buyer_last_name,
        "phone": address.phone,
        "phone2": "",
        "address1": address.line1,
        "address2": "",
        "address3": address.province,
        "address4": address.district,
        "address5": address.postal_code,
        "city": address.district,
        "post_code": address.postal_code,
        "country": "Thailand",
    }
    return {
        "order_id": order.order_id,
        "order_number": order.order_id,
        "created_at": lazada_time(order.created_at),
        "updated_at": lazada_time(order.updated_at),
        "statuses": list(dict.fromkeys(statuses)),
        "price": _price_text(price),
        "items_count": len(statuses),
        "payment_method": order.payment_method,
        "shipping_fee": _num(order.shipping_fee),
        "shipping_fee_original": _num(order.shipping_fee),
        "shipping_fee_discount_seller": 0,
        "shipping_fee_discount_platform": 0,
        "voucher": _num(voucher),
        "voucher_seller": _num(voucher),
        "voucher_platform": 0.0,
        "voucher_code": "",
        "customer_first_name": order.buyer_first_name,
        "customer_last_name": order.buyer_last_name,
        "address_shipping": shipping,
        "address_billing": dict(shipping),
        "gift_option": False,
        "gift_message": "",
        "remarks": "",
        "delivery_info": "",
        "warehouse_code": "dropshipping",
        "national_registration_number": "",
        "tax_code": "",
        "branch_number": "",
        "extra_attributes": "",
        "promised_shipping_times": "",
    }


def render_product(product: SeedProduct) -> dict[str, Any]:
    stamp = str(int(product.updated_at.timestamp() * 1000))
    return {
        "item_id": product.product_id,
        "primary_category": 10000,
        "attributes": {"name": product.name, "brand": "No Brand"},
        "status": "Active",
        "created_time": stamp,
        "updated_time": stamp,
        "skus": [
            {
                "SkuId": v.variation_id,
                "SellerSku": v.sku,
                "ShopSku": f"{product.product_id}_TH-{v.variation_id}",
                "price": _num(v.price),
                "special_price": 0.0,
                "quantity": v.stock,
                "Available": v.stock,
                "Status": "active",
                "saleProp": {"variation": v.name},
            }
            for v in product.variations
        ],
    }


# --- the sandbox ---------------------------------------------------------------------------


def _parse_time(value: str | None, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "+") if "T" in value else value)
    except ValueError:
        raise ApiError("InvalidParameter", f"{name} is not an ISO-8601 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=TH)
    return parsed.astimezone(UTC)


def _int(params: Mapping[str, str], name: str, default: int) -> int:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ApiError("InvalidParameter", f"{name} must be an integer") from None


Handler = Callable[[LazadaShop | None, dict[str, str]], dict[str, Any]]


class LazadaSandbox:
    """The sandbox's state: shops by seller id, apps, tokens, faults."""

    def __init__(
        self,
        *,
        tokens: TokenRegistry | None = None,
        faults: Faults | None = None,
        single_use_refresh: bool = False,
        max_item_ids: int = 50,
        max_products_limit: int = 50,
        rate_limit_ban_seconds: float = 0.0,
        webhook_transport: httpx.AsyncBaseTransport | None = None,
        country: str = "th",
    ) -> None:
        # The seller country this gateway serves (its sellers' short codes start with it).
        self.country = country.lower()
        # Lazada refresh tokens stay valid until they expire (only Shopee's are single use);
        # lifetimes of an app in "online" status: token 30 days, refresh 180 days.
        self.tokens = tokens or TokenRegistry(
            access_ttl_seconds=30 * 86400,
            refresh_ttl_seconds=180 * 86400,
            single_use_refresh=single_use_refresh,
        )
        self.faults = faults or Faults()
        self.shops: dict[str, LazadaShop] = {}
        self.apps: dict[str, str] = {}
        self.max_item_ids = max_item_ids
        self.max_products_limit = max_products_limit
        self.rate_limit_ban_seconds = rate_limit_ban_seconds
        self.webhook_transport = webhook_transport
        self.calls: Counter[str] = Counter()
        self._created: dict[str, list[datetime]] = {}
        self._request_ids = itertools.count(1)
        self._request_prefix = secrets.token_hex(4)

    # --- shops ---------------------------------------------------------------------------

    def add_shop(
        self,
        *,
        seed: str = "lazada",
        order_count: int = 0,
        days: float = 60,
        seller_id: str | None = None,
        name: str | None = None,
        app_key: str | None = None,
        app_secret: str | None = None,
        access_token: str | None = None,
        refresh_token: str | None = None,
        shop: SeededShop | None = None,
        product_count: int = 20,
    ) -> dict[str, str]:
        """Add (or replace) a seller; returns the credentials a connection needs."""
        seller_id = seller_id or str(100_000_000 + secrets.randbelow(900_000_000))
        if shop is None:
            end = datetime.now(UTC)
            shop = SeededShop(
                seed=seed,
                order_count=order_count,
                start=end - timedelta(days=days),
                end=end,
                product_count=product_count,
            )
        app_key = app_key or str(100_000 + secrets.randbelow(900_000))
        app_secret = app_secret or secrets.token_hex(16)
        self.apps[app_key] = app_secret
        name = name or f"Lazada Sandbox Shop {seller_id}"
        self.shops[seller_id] = LazadaShop(seller_id, shop, app_key, app_secret, name)
        self._created.pop(seller_id, None)
        access, refresh = self.tokens.issue(seller_id, access=access_token, refresh=refresh_token)
        return {
            "apiKey": app_key,
            "apiSecret": app_secret,
            "accessToken": access.value,
            "refreshToken": refresh.value,
            "shopId": seller_id,
            "shopName": name,
        }

    def order(self, lz: LazadaShop, index: int) -> SeedOrder:
        return lz.shop.order(index)

    def _created_times(self, lz: LazadaShop) -> list[datetime]:
        """Creation time by order index (it never changes), built once per shop."""
        created = self._created.get(lz.seller_id)
        if created is None or len(created) != lz.shop.order_count:
            created = [self.order(lz, i).created_at for i in range(lz.shop.order_count)]
            self._created[lz.seller_id] = created
        return created

    # --- envelope ------------------------------------------------------------------------

    def _request_id(self) -> str:
        return f"{self._request_prefix}{next(self._request_ids):010x}"

    def _json(self, body: dict[str, Any], status: int = 200) -> Response:
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        return Response(content, status_code=status, media_type="application/json")

    def _error(self, error: ApiError) -> Response:
        body: dict[str, Any] = {
            "type": error.kind,
            "code": error.code,
            "message": error.message,
            "request_id": self._request_id(),
        }
        if error.detail:
            body["detail"] = error.detail
        return self._json(body, error.status)

    def _rate_limited(self) -> Response:
        # Lazada's throttling message names the ban ("ban will last 1 seconds"); by default the
        # sandbox leaves it out so clients fall back to their own (fast, in tests) back-off.
        message = "The request has exceeded the limit"
        if self.rate_limit_ban_seconds > 0:
            message += f": ban will last {self.rate_limit_ban_seconds:g} seconds"
        return self._error(ApiError("ApiCallLimit", message, kind="ISP"))

    def _server_error(self) -> Response:
        return self._error(
            ApiError("ServiceUnavailable", "Service unavailable", kind="SYSTEM", status=503)
        )

    # --- gateway -------------------------------------------------------------------------

    async def _params(self, request: Request) -> dict[str, str]:
        params = dict(request.query_params)
        if request.method == "POST":
            body = await request.body()
            if body and request.headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"
            ):
                params.update(parse_qsl(body.decode(), keep_blank_values=True))
        return params

    def _verify(self, api_path: str, params: Mapping[str, str]) -> str:
        app_key = params.get("app_key")
        if not app_key:
            raise ApiError("MissingAppKey", "Missing app key")
        secret = self.apps.get(app_key)
        if secret is None:
            raise ApiError("InvalidAppKey", "Specified app key is invalid")
        stamp = params.get("timestamp", "")
        try:
            moment = (
                int(stamp) / 1000 if stamp.isdigit() else datetime.fromisoformat(stamp).timestamp()
            )
        except ValueError:
            raise ApiError("InvalidTimestamp", "Invalid timestamp") from None
        if abs(time.time() - moment) > TIMESTAMP_WINDOW_SECONDS:
            raise ApiError("InvalidTimestamp", "Timestamp is out of the 7200 s window")
        if params.get("sign_method", "sha256") != "sha256":
            raise ApiError("InvalidSignature", "Unsupported sign_method")
        given = params.get("sign", "")
        expected = sign(api_path, {k: v for k, v in params.items() if k != "sign"}, secret)
        if not secrets.compare_digest(given.encode(), expected.encode()):
            raise ApiError(
                "IncompleteSignature",
                "The request signature does not conform to platform standards",
            )
        return app_key

    def _seller(self, app_key: str, params: Mapping[str, str]) -> LazadaShop:
        token = self.tokens.check_access(params.get("access_token"))
        if token is not None and self.faults.expire_tokens_next > 0:
            self.faults.expire_tokens_next -= 1
            token.expires_at = 0
            token = None
        lz = self.shops.get(token.shop_key) if token is not None else None
        if lz is None or lz.app_key != app_key:
            raise ApiError("IllegalAccessToken", "The specified access token is invalid or expired")
        return lz

    async def _gateway(
        self, request: Request, api_path: str, handlers: Mapping[str, tuple[Handler, bool]]
    ) -> Response:
        self.calls[api_path] += 1
        fault = await apply_faults(
            self.faults, rate_limited=self._rate_limited, server_error=self._server_error
        )
        if fault is not None:
            return fault
        try:
            params = await self._params(request)
            app_key = self._verify(api_path, params)
            entry = handlers.get(api_path)
            if entry is None:
                raise ApiError("InvalidApiPath", f"The specified API path {api_path} is invalid")
            handler, seller_call = entry
            lz = self._seller(app_key, params) if seller_call else None
            body = handler(lz, params)
        except ApiError as error:
            return self._error(error)
        return self._json({**body, "code": "0", "request_id": self._request_id()})

    async def api(self, request: Request) -> Response:
        return await self._gateway(request, "/" + request.path_params["api"], self._api_handlers)

    async def auth_api(self, request: Request) -> Response:
        return await self._gateway(request, "/" + request.path_params["api"], self._auth_handlers)

    @property
    def _api_handlers(self) -> dict[str, tuple[Handler, bool]]:
        return {
            "/orders/get": (self._orders_get, True),
            "/order/get": (self._order_get, True),
            "/orders/items/get": (self._orders_items_get, True),
            "/order/items/get": (self._order_items_get, True),
            "/seller/get": (self._seller_get, True),
            "/products/get": (self._products_get, True),
            "/product/price_quantity/update": (self._price_quantity_update, True),
            "/product/stock/sellable/update": (self._price_quantity_update, True),
            **{path: (handler, True) for path, handler in lazada_reviews.HANDLERS.items()},
            **lazada_fulfillment.handlers(self),
        }

    @property
    def _auth_handlers(self) -> dict[str, tuple[Handler, bool]]:
        return {"/auth/token/refresh": (self._token_refresh, False)}

    # --- API handlers --------------------------------------------------------------------

    def _orders_get(self, lz: LazadaShop | None, params: dict[str, str]) -> dict[str, Any]:
        assert lz is not None
        limit = _int(params, "limit", MAX_ORDERS_LIMIT)
        offset = _int(params, "offset", 0)
        if not 1 <= limit <= MAX_ORDERS_LIMIT:
            raise ApiError("InvalidParameter", f"limit must be between 1 and {MAX_ORDERS_LIMIT}")
        if not 0 <= offset <= MAX_OFFSET:
            raise ApiError("InvalidParameter", f"offset must be between 0 and {MAX_OFFSET}")
        updated_after = _parse_time(params.get("update_after"), "update_after")
        updated_before = _parse_time(params.get("update_before"), "update_before")
        created_after = _parse_time(params.get("created_after"), "created_after")
        created_before = _parse_time(params.get("created_before"), "created_before")
        if updated_after is None and created_after is None:
            raise ApiError("MissingParameter", "One of created_after or update_after is required")
        sort_by = params.get("sort_by", "created_at")
        direction = params.get("sort_direction", "DESC")
        if sort_by not in ("created_at", "updated_at") or direction not in ("ASC", "DESC"):
            raise ApiError("InvalidParameter", "Invalid sort_by or sort_direction")
        status = params.get("status", "all")

        shop = lz.shop
        index = shop.update_index()
        lo = bisect.bisect_left(index, (updated_after, -1)) if updated_after else 0
        hi = bisect.bisect_left(index, (updated_before, -1)) if updated_before else len(index)
        filtered = bool(created_after or created_before or status != "all")
        if not filtered and sort_by == "updated_at":
            # The common case, kept cheap: only the page itself is sliced out of the index.
            total = max(0, hi - lo)
            if direction == "ASC":
                window = index[lo + offset : min(hi, lo + offset + limit)]
            else:
                window = index[max(lo, hi - offset - limit) : max(lo, hi - offset)][::-1]
            page = [i for _, i in window]
        else:
            candidates = [i for _, i in index[lo:hi]]
            if created_after or created_before or sort_by == "created_at":
                created = self._created_times(lz)
                candidates = [
                    i
                    for i in candidates
                    if (created_after is None or created[i] >= created_after)
                    and (created_before is None or created[i] < created_before)
                ]
                if sort_by == "created_at":
                    candidates.sort(key=lambda i: (created[i], i))
            if status != "all":
                candidates = [i for i in candidates if status in unit_statuses(self.order(lz, i))]
            if direction == "DESC":
                candidates.reverse()
            total = len(candidates)
            page = candidates[offset : offset + limit]
        rendered = [render_order(self.order(lz, i)) for i in page]
        return {"data": {"count": len(rendered), "countTotal": total, "orders": rendered}}

    def _find(self, lz: LazadaShop, raw_id: str) -> SeedOrder | None:
        try:
            index = lz.shop.index_of(int(raw_id))
        except ValueError:
            return None
        return None if index is None else self.order(lz, index)

    def _order_get(self, lz: LazadaShop | None, params: dict[str, str]) -> dict[str, Any]:
        assert lz is not None
        order = self._find(lz, params.get("order_id", ""))
        if order is None:
            raise ApiError("E016", "Invalid Order ID")
        return {"data": render_order(order)}

    def _order_items_get(self, lz: LazadaShop | None, params: dict[str, str]) -> dict[str, Any]:
        assert lz is not None
        order = self._find(lz, params.get("order_id", ""))
        if order is None:
            raise ApiError("E016", "Invalid Order ID")
        return {"data": render_items(order)}

    def _orders_items_get(self, lz: LazadaShop | None, params: dict[str, str]) -> dict[str, Any]:
        assert lz is not None
        raw = params.get("order_ids", "").strip()
        if not (raw.startswith("[") and raw.endswith("]")):
            raise ApiError("E056", "Invalid order_ids format: expected [id1,id2]")
        ids = [part.strip() for part in raw[1:-1].split(",") if part.strip()]
        if not ids:
            raise ApiError("MissingParameter", "order_ids is empty")
        if len(ids) > self.max_item_ids:
            raise ApiError("E038", "Too many orders were requested")
        data = []
        for raw_id in ids:
            order = self._find(lz, raw_id)
            if order is not None:
                data.append(
                    {
                        "order_id": order.order_id,
                        "order_number": order.order_id,
                        "order_items": render_items(order),
                    }
                )
        return {"data": data}

    def _seller_get(self, lz: LazadaShop | None, params: dict[str, str]) -> dict[str, Any]:
        assert lz is not None
        return {
            "data": {
                "name": lz.name,
                "seller_id": int(lz.seller_id) if lz.seller_id.isdigit() else lz.seller_id,
                "short_code": f"{self.country.upper()}{lz.seller_id[-6:]}",
                "email": f"seller{lz.seller_id}@example.co.th",
                "location": "Bangkok",
                "status": "ACTIVE",
                "verified": True,
                "cb": False,
            }
        }

    def _products_get(self, lz: LazadaShop | None, params: dict[str, str]) -> dict[str, Any]:
        assert lz is not None
        filter_ = params.get("filter")
        if not filter_:
            raise ApiError("MissingParameter", "filter is required")
        limit = _int(params, "limit", 20)
        offset = _int(params, "offset", 0)
        if not 1 <= limit <= self.max_products_limit or offset < 0:
            raise ApiError(
                "InvalidParameter", f"limit must be between 1 and {self.max_products_limit}"
            )
        products = lz.shop.products
        if params.get("sku_seller_list"):
            try:
                wanted = json.loads(params["sku_seller_list"])
            except ValueError:
                raise ApiError("InvalidParameter", "sku_seller_list must be a JSON array") from None
            if not isinstance(wanted, list):
                raise ApiError("InvalidParameter", "sku_seller_list must be a JSON array")
            skus = {str(sku) for sku in wanted}
            products = [p for p in products if any(v.sku in skus for v in p.variations)]
        if filter_ == "sold-out":
            products = [p for p in products if any(v.stock == 0 for v in p.variations)]
        elif filter_ not in ("all", "live"):
            products = []
        page = products[offset : offset + limit]
        return {
            "data": {
                "total_products": len(products),
                "products": [render_product(p) for p in page],
            }
        }

    def _price_quantity_update(
        self, lz: LazadaShop | None, params: dict[str, str]
    ) -> dict[str, Any]:
        assert lz is not None
        payload = params.get("payload")
        if not payload:
            raise ApiError("MissingParameter", "payload is required")
        try:
            # Sandbox-only parsing of a small payload; expat refuses entity expansion bombs.
            root = ET.fromstring(payload)  # noqa: S314
        except ET.ParseError:
            raise ApiError("InvalidParameter", "payload is not well-formed XML") from None
        skus = root.findall("./Product/Skus/Sku")
        if not skus or len(skus) > 50:
            raise ApiError("InvalidParameter", "payload must hold 1 to 50 Sku elements")
        changes: list[tuple[tuple[SeedProduct, SeedVariation], int]] = []
        detail: list[dict[str, Any]] = []
        locked: list[dict[str, Any]] = []
        for node in skus:
            seller_sku = (node.findtext("SellerSku") or "").strip()
            found = lz.shop.variation_by_sku(seller_sku)
            # The sellable-quantity element, or the older total-quantity one.
            quantity = (
                node.findtext("SellableQuantity") or node.findtext("Quantity") or ""
            ).strip()
            if found is None:
                detail.append(
                    {
                        "field": "SellerSku",
                        "message": "SELLER_SKU_NOT_FOUND",
                        "seller_sku": seller_sku,
                    }
                )
            elif not quantity.isdigit():
                detail.append(
                    {"field": "Quantity", "message": "QUANTITY_INVALID", "seller_sku": seller_sku}
                )
            elif seller_sku in lz.shop.campaign_locked:
                locked.append(
                    {
                        "field": "SellableQuantity",
                        "message": "negative sellable on channel inventory: stock is locked by "
                        "a running campaign",
                        "seller_sku": seller_sku,
                    }
                )
            else:
                changes.append((found, int(quantity)))
        if detail:
            raise ApiError("500", "Update price quantity failed", detail=detail)
        if locked:
            raise ApiError("501", "negative sellable on channel inventory", detail=locked)
        if self.faults.ignore_stock_updates:
            return {}
        now = datetime.now(UTC).replace(microsecond=0)
        for (product, variation), stock in changes:
            variation.stock = stock
            product.updated_at = now
        return {}

    def _token_refresh(self, lz: LazadaShop | None, params: dict[str, str]) -> dict[str, Any]:
        refused = ApiError(
            "IllegalRefreshToken", "The specified refresh token is invalid or expired"
        )
        issued = self.tokens.use_refresh(params.get("refresh_token"))
        if issued is None:
            raise refused
        access, refresh = issued
        seller = self.shops.get(access.shop_key)
        if seller is None or seller.app_key != params.get("app_key"):
            raise refused
        return {
            "access_token": access.value,
            "refresh_token": refresh.value,
            "expires_in": self.tokens.access_ttl_seconds,
            "refresh_expires_in": self.tokens.refresh_ttl_seconds,
            "country": self.country,
            "account_platform": "seller_center",
            "account": f"seller{seller.seller_id}@example.co.th",
            "country_user_info": [
                {
                    "country": self.country,
                    "user_id": seller.seller_id,
                    "seller_id": seller.seller_id,
                    "short_code": f"{self.country.upper()}{seller.seller_id[-6:]}",
                }
            ],
        }

    # --- control endpoints ---------------------------------------------------------------

    async def _body(self, request: Request) -> dict[str, Any]:
        body = await read_json_or_none(request)
        if body is None and not await request.body():
            return {}
        if not isinstance(body, dict):
            raise ApiError("InvalidParameter", "body must be a JSON object", status=422)
        return body

    def _shop_of(self, body: Mapping[str, Any]) -> LazadaShop:
        lz = self.shops.get(str(body.get("shopId", "")))
        if lz is None:
            raise ApiError("NotFound", "unknown shopId", status=404)
        return lz

    async def control_shops(self, request: Request) -> Response:
        try:
            body = await self._body(request)
            credentials = self.add_shop(
                seed=str(body.get("seed", "lazada")),
                order_count=int(body.get("orderCount", 0)),
                days=float(body.get("days", 60)),
                seller_id=str(body["shopId"]) if body.get("shopId") else None,
                name=body.get("shopName"),
                product_count=int(body.get("productCount", 20)),
            )
        except ApiError as error:
            return self._error(error)
        except (TypeError, ValueError):
            return JSONResponse({"error": "invalid shop parameters"}, status_code=422)
        return JSONResponse(credentials, status_code=201)

    async def control_faults(self, request: Request) -> Response:
        try:
            body = await self._body(request)
        except ApiError as error:
            return self._error(error)
        if body.pop("reset", False):
            self.faults.reset()
        if "rateLimitBanSeconds" in body:
            self.rate_limit_ban_seconds = float(body.pop("rateLimitBanSeconds"))
        snake = {
            "".join(f"_{c.lower()}" if c.isupper() else c for c in key): value
            for key, value in body.items()
        }
        try:
            self.faults.update(snake)
        except (KeyError, TypeError, ValueError) as exc:
            return JSONResponse({"error": f"unknown or invalid fault {exc}"}, status_code=422)
        current = {f.name: getattr(self.faults, f.name) for f in fields(Faults)}
        return JSONResponse({k: v for k, v in current.items() if not k.startswith("_")})

    async def control_change_orders(self, request: Request) -> Response:
        try:
            body = await self._body(request)
            lz = self._shop_of(body)
        except ApiError as error:
            return self._error(error)
        status = body.get("status")
        if status is not None:
            status = LAZADA_TO_NEUTRAL.get(str(status), str(status))
            if status not in STATUSES:
                return JSONResponse({"error": f"unknown status {status!r}"}, status_code=422)
        shop = lz.shop
        if body.get("orderIds"):
            found = [shop.index_of(int(i)) for i in body["orderIds"] if str(i).isdigit()]
            changed = [shop.touch(i, status=status) for i in found if i is not None]
        elif status is None:
            changed = shop.change_fraction(float(body.get("fraction", 0)))
        else:
            fraction = float(body.get("fraction", 0))
            step = max(1, round(1 / fraction)) if fraction > 0 else 0
            indexes = list(range(0, shop.order_count, step)) if step else []
            changed = [shop.touch(i, status=status) for i in indexes]
        return JSONResponse(
            {"changed": [{"orderId": str(o.order_id), "status": o.status} for o in changed]}
        )

    async def control_expire_tokens(self, request: Request) -> Response:
        self.tokens.expire_all()
        return JSONResponse({"expired": True})

    async def control_send_webhooks(self, request: Request) -> Response:
        try:
            body = await self._body(request)
            lz = self._shop_of(body)
        except ApiError as error:
            return self._error(error)
        url = body.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return JSONResponse({"error": "url is required"}, status_code=422)
        message_type = body.get("messageType", 0)
        if type(message_type) is not int or message_type not in PUSH_TYPES:
            return JSONResponse(
                {"error": f"messageType must be one of {sorted(PUSH_TYPES)}"}, status_code=422
            )
        if body.get("orderIds"):
            orders = [o for o in (self._find(lz, str(i)) for i in body["orderIds"]) if o]
        else:
            recent = lz.shop.update_index()[-10:]
            orders = [self.order(lz, i) for _, i in recent]
        if message_type in (0, 10):
            raws = [
                push_body(lz.seller_id, order, row, message_type=message_type)
                for order in orders
                for row in render_items(order)
            ]
        else:
            raws = [event_push_body(lz, message_type)]
        statuses = await self.send_pushes(lz, url, raws)
        return JSONResponse({"sent": len(statuses), "statuses": statuses})

    async def send_pushes(self, lz: LazadaShop, url: str, raws: Sequence[bytes]) -> list[int]:
        """Each body signed as Lazada signs pushes (app key + raw body, app secret)."""
        results: list[int] = []
        async with httpx.AsyncClient(transport=self.webhook_transport, timeout=10) as client:
            for raw in raws:
                headers = {
                    "Authorization": push_signature(lz.app_key, lz.app_secret, raw),
                    "Content-Type": "application/json",
                }
                try:
                    response = await client.post(url, content=raw, headers=headers)
                    results.append(response.status_code)
                except httpx.HTTPError:
                    results.append(0)
        return results


# Message types the sandbox pushes (reference §2.7, §6): order lines (0), reverse order lines
# (10), product created/updated/deleted (3/4/5), low stock (6), token expiry (8).
PUSH_TYPES = frozenset({0, 3, 4, 5, 6, 8, 10})


def _encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def push_body(
    seller_id: str, order: SeedOrder, row: Mapping[str, Any], *, message_type: int = 0
) -> bytes:
    data: dict[str, Any] = {
        "order_status": row["status"],
        "trade_order_id": str(order.order_id),
        "trade_order_line_id": str(row["order_item_id"]),
        "status_update_time": int(order.updated_at.timestamp()),
    }
    if message_type == 10:
        data |= {
            "reverse_order_id": f"9{order.order_id}",
            "reverse_order_line_id": f"9{row['order_item_id']}",
            "reverse_status": "CANCEL_INIT" if row["status"] != "canceled" else "SUCCESS",
        }
    message = {
        "seller_id": seller_id,
        "message_type": message_type,
        "data": data,
        "timestamp": int(time.time() * 1000),
        "site": "lazada_th",
    }
    return _encode(message)


def event_push_body(lz: LazadaShop, message_type: int) -> bytes:
    now = int(time.time())
    product = lz.shop.products[0] if lz.shop.products else None
    sku = product.variations[0].sku if product is not None and product.variations else ""
    item_id = product.product_id if product is not None else 0
    data: dict[str, Any]
    if message_type == 8:
        data = {"expire_time": now + 7 * 86400, "seller_id": lz.seller_id}
    elif message_type == 6:
        data = {"seller_sku": sku, "sku_id": item_id, "sellable_quantity": 3}
    else:
        data = {"item_id": item_id, "seller_sku": sku, "sku_id": item_id, "update_time": now}
    return _encode(
        {
            "seller_id": lz.seller_id,
            "message_type": message_type,
            "data": data,
            "timestamp": now * 1000,
            "site": "lazada_th",
        }
    )


def create_app(state: LazadaSandbox | None = None) -> Starlette:
    sandbox = state or LazadaSandbox()
    endpoint = Callable[[Request], Awaitable[Response]]
    routes: list[tuple[str, endpoint, list[str]]] = [
        ("/rest/{api:path}", sandbox.api, ["GET", "POST"]),
        ("/auth/rest/{api:path}", sandbox.auth_api, ["GET", "POST"]),
        ("/_sandbox/shops", sandbox.control_shops, ["POST"]),
        ("/_sandbox/faults", sandbox.control_faults, ["POST"]),
        ("/_sandbox/orders/change", sandbox.control_change_orders, ["POST"]),
        ("/_sandbox/tokens/expire", sandbox.control_expire_tokens, ["POST"]),
        ("/_sandbox/webhooks/send", sandbox.control_send_webhooks, ["POST"]),
        ("/_sandbox/orders", lazada_fulfillment.place_orders_endpoint(sandbox), ["POST"]),
    ]
    app = Starlette(routes=[Route(path, fn, methods=methods) for path, fn, methods in routes])
    app.state.sandbox = sandbox
    return app


def seed_demo(state: LazadaSandbox) -> dict[str, str]:
    """A fixed demo seller (same credentials on every run) for demos and integrators."""
    credentials = state.add_shop(
        seed="lazada-demo",
        order_count=500,
        days=30,
        seller_id="100200300",
        name="Lazada Demo Shop (Sandbox)",
        app_key="100001",
        app_secret="sandbox-lazada-app-secret",
        access_token="sandbox-lazada-access-token",
        refresh_token="sandbox-lazada-refresh-token",
    )
    return {
        key: credentials[key]
        for key in ("apiKey", "apiSecret", "accessToken", "refreshToken", "shopId")
    }
