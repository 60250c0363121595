"""A TikTok Shop Open API sandbox (reference fulfillment-and-tiktok.md §4), speaking what
`app.platforms.tiktok` calls. Mount it so that `TIKTOK_BASE_URL = <mount>`,
`TIKTOK_AUTH_URL = <mount>/auth` and `TIKTOK_AUTHORIZE_URL = <mount>/open/authorize`.

Every shop call is checked like the real gateway: `app_key`, `timestamp` within
[now - 5 min, now + 30 s] (36009004), `sign` over path + sorted query + body (106001), the
`x-tts-access-token` header (105002 when expired), `shop_cipher` (106013 missing, 36009004
wrong), `page_size` 1-100, `ids` at most 50; faults answer HTTP 429 with 36009002 or 503.
Orders come from a `SeededShop` in Thai baht, one line item per unit."""

from __future__ import annotations

import bisect
import hashlib
import json
import secrets
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from app.platforms.tiktok.auth import (
    ACCESS_TOKEN_HEADER,
    push_signature,
    sign,
    timestamp_in_window,
)
from app.sandbox.common import Faults, JSONResponse, TokenRegistry, apply_faults, read_json_or_none
from app.sandbox.fulfillment import minimal_pdf, place_orders
from app.sandbox.seed import SeededShop, SeedOrder

MAX_PAGE_SIZE = 100
# Batch Ship Packages' limit is unconfirmed (reference §4.7); the client's default is 50.
BATCH_SHIP_LIMIT = 50
MAX_DETAIL_IDS = 50
_CENT = Decimal("0.01")

# Neutral seed status -> TikTok order status (and whether the buyer asked to cancel).
STATUS_OF: dict[str, str] = {
    "unpaid": "UNPAID",
    "pending": "AWAITING_SHIPMENT",
    "ready_to_ship": "AWAITING_COLLECTION",
    "shipped": "IN_TRANSIT",
    "delivered": "DELIVERED",
    "completed": "COMPLETED",
    "cancelling": "AWAITING_SHIPMENT",
    "cancelled": "CANCELLED",
    "returned": "COMPLETED",
    "failed": "CANCELLED",
}
SHIPPABLE = frozenset({"AWAITING_SHIPMENT", "ON_HOLD"})


class ApiError(Exception):
    def __init__(self, code: int, message: str, status: int = 200) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass
class TikTokShop:
    shop_id: str
    shop: SeededShop
    app_key: str
    app_secret: str
    name: str
    cipher: str
    # Per order id: what fulfillment changed (status, tracking, cancellation).
    shipped: dict[str, dict[str, Any]]


def _money(value: Decimal) -> str:
    return str(value.quantize(_CENT))


def _shares(total: Decimal, parts: int) -> list[Decimal]:
    base = (total / parts).quantize(_CENT, rounding="ROUND_DOWN") if parts else Decimal(0)
    shares = [base] * parts
    if parts:
        shares[0] += total - base * parts
    return shares


class TikTokSandbox:
    def __init__(self, *, faults: Faults | None = None) -> None:
        # Access token 7 days (reference §4.2); refresh reusable until it expires (unconfirmed).
        self.tokens = TokenRegistry(
            access_ttl_seconds=7 * 86400, refresh_ttl_seconds=365 * 86400, single_use_refresh=False
        )
        self.faults = faults or Faults()
        self.shops: dict[str, TikTokShop] = {}
        self.apps: dict[str, str] = {}
        self.codes: dict[str, tuple[str, float]] = {}  # auth code -> (shop id, expiry)
        self.calls: Counter[str] = Counter()
        self.webhook_transport: httpx.AsyncBaseTransport | None = None

    # --- shops ---------------------------------------------------------------------------

    def add_shop(
        self,
        *,
        seed: str = "tiktok",
        order_count: int = 0,
        days: float = 60,
        shop_id: str | None = None,
        name: str | None = None,
        app_key: str | None = None,
        app_secret: str | None = None,
        access_token: str | None = None,
        refresh_token: str | None = None,
        product_count: int = 20,
    ) -> dict[str, str]:
        shop_id = shop_id or str(7_000_000_000_000_000_000 + secrets.randbelow(10**18))
        end = datetime.now(UTC)
        seeded = SeededShop(
            seed=seed,
            order_count=order_count,
            start=end - timedelta(days=days),
            end=end,
            product_count=product_count,
        )
        app_key = app_key or secrets.token_hex(6)
        app_secret = app_secret or secrets.token_hex(16)
        self.apps[app_key] = app_secret
        name = name or f"TikTok Sandbox Shop {shop_id[-6:]}"
        cipher = "ROW_" + hashlib.sha256(shop_id.encode()).hexdigest()[:24]
        self.shops[shop_id] = TikTokShop(shop_id, seeded, app_key, app_secret, name, cipher, {})
        access, refresh = self.tokens.issue(shop_id, access=access_token, refresh=refresh_token)
        return {
            "apiKey": app_key,
            "apiSecret": app_secret,
            "accessToken": access.value,
            "refreshToken": refresh.value,
            "shopId": shop_id,
            "shopName": name,
            "shopCipher": cipher,
        }

    # --- rendering -------------------------------------------------------------------------

    def render_order(self, tt: TikTokShop, order: SeedOrder) -> dict[str, Any]:
        oid = str(order.order_id)
        extra = tt.shipped.get(oid, {})
        status = extra.get("status") or STATUS_OF.get(order.status, "AWAITING_SHIPMENT")
        package_id = f"11{oid}"
        lines = []
        for item in order.items:
            for unit, share in enumerate(_shares(item.discount, item.quantity)):
                lines.append(
                    {
                        "id": f"{item.line_id}{unit:03d}",
                        "sku_id": str(item.variation_id),
                        "product_id": str(item.product_id),
                        "product_name": item.name,
                        "sku_name": item.variation,
                        "seller_sku": item.sku,
                        "original_price": _money(item.unit_price),
                        "sale_price": _money(item.unit_price - share),
                        "currency": order.currency,
                        "package_id": package_id,
                        "display_status": status,
                    }
                )
        address = order.address
        update = max(order.updated_at, extra.get("updated_at", order.updated_at))
        return {
            "id": oid,
            "status": status,
            "create_time": int(order.created_at.timestamp()),
            "update_time": int(update.timestamp()),
            "paid_time": int(order.paid_at.timestamp()) if order.paid_at else None,
            "is_cod": order.is_cod,
            "payment_method_name": "Cash on delivery" if order.is_cod else order.payment_method,
            "is_buyer_request_cancel": order.status == "cancelling" and not extra.get("answered"),
            "shipping_type": "TIKTOK",
            "fulfillment_type": "FULFILLMENT_BY_SELLER",
            "tracking_number": extra.get("tracking_number", ""),
            "packages": [{"id": package_id}],
            "line_items": lines,
            "payment": {
                "currency": order.currency,
                "sub_total": _money(sum((Decimal(r["sale_price"]) for r in lines), Decimal(0))),
                "shipping_fee": _money(order.shipping_fee),
                "seller_discount": _money(
                    sum((i.discount for i in order.items), Decimal(0)) + order.voucher
                ),
                "platform_discount": "0.00",
                "total_amount": _money(order.total),
            },
            "recipient_address": {
                "name": f"{order.buyer_first_name} {order.buyer_last_name}",
                "phone_number": address.phone,
                "address_line1": address.line1,
                "postal_code": address.postal_code,
                "region_code": "TH",
                "full_address": f"{address.line1}, {address.district}, {address.province}",
                "district_info": [
                    {"address_level_name": "Province", "address_name": address.province},
                    {"address_level_name": "District", "address_name": address.district},
                ],
            },
        }

    def render_product(self, tt: TikTokShop, index: int) -> dict[str, Any]:
        product = tt.shop.products[index]
        return {
            "id": str(product.product_id),
            "title": product.name,
            "status": "ACTIVATE",
            "update_time": int(product.updated_at.timestamp()),
            "skus": [
                {
                    "id": str(v.variation_id),
                    "seller_sku": v.sku,
                    "sales_attributes": [{"value_name": v.name}],
                    "price": {"currency": "THB", "sale_price": _money(v.price)},
                    "inventory": [{"warehouse_id": f"WH{tt.shop_id[-4:]}", "quantity": v.stock}],
                }
                for v in product.variations
            ],
        }

    # --- envelope and gateway -------------------------------------------------------------

    def _json(
        self, data: Any, code: int = 0, message: str = "Success", status: int = 200
    ) -> Response:
        body = {"code": code, "message": message, "request_id": secrets.token_hex(8), "data": data}
        return Response(
            orjson.dumps(body),
            status_code=status,
            media_type="application/json",
        )

    def _rate_limited(self) -> Response:
        return self._json(None, 36009002, "Too many requests", 429)

    def _server_error(self) -> Response:
        return self._json(None, 36009003, "Internal error", 503)

    def _verify(self, request: Request, body: bytes) -> str:
        params = dict(request.query_params)
        app_key = params.get("app_key", "")
        secret = self.apps.get(app_key)
        if secret is None:
            raise ApiError(36009004, "Invalid app_key")
        stamp = params.get("timestamp", "")
        if not stamp.isdigit() or len(stamp) != 10 or not timestamp_in_window(int(stamp)):
            raise ApiError(36009004, "Timestamp is invalid or out of the window")
        expected = sign(request.url.path, params, secret, body)
        if not secrets.compare_digest(params.get("sign", "").encode(), expected.encode()):
            raise ApiError(106001, "Invalid signature")
        return app_key

    def _token_shop_ids(self, request: Request, app_key: str) -> str:
        token = self.tokens.check_access(request.headers.get(ACCESS_TOKEN_HEADER))
        if token is not None and self.faults.expire_tokens_next > 0:
            self.faults.expire_tokens_next -= 1
            token.expires_at = 0
            token = None
        if token is None:
            raise ApiError(105002, "Expired credentials: access_token is expired", 401)
        shop = self.shops.get(token.shop_key)
        if shop is None or shop.app_key != app_key:
            raise ApiError(36009004, "Invalid x-tts-access-token")
        return token.shop_key

    def _shop(self, request: Request, shop_id: str) -> TikTokShop:
        tt = self.shops[shop_id]
        cipher = request.query_params.get("shop_cipher")
        if not cipher:
            raise ApiError(106013, "shop_cipher is required")
        if cipher != tt.cipher:
            raise ApiError(36009004, "Unexpected shop_cipher")
        return tt

    async def gateway(self, request: Request) -> Response:
        path = request.path_params["api"]
        self.calls[path] += 1
        fault = await apply_faults(
            self.faults, rate_limited=self._rate_limited, server_error=self._server_error
        )
        if fault is not None:
            return fault
        body = await request.body()
        try:
            app_key = self._verify(request, body)
            shop_id = self._token_shop_ids(request, app_key)
            document = json.loads(body) if body else {}
            parts = path.split("/")
            if len(parts) < 3:
                raise ApiError(36009009, "Invalid path")
            group, _version, rest = parts[0], parts[1], "/".join(parts[2:])
            if group == "authorization" and rest == "shops":
                tt = self.shops[shop_id]
                data: Any = {
                    "shops": [
                        {
                            "id": tt.shop_id,
                            "name": tt.name,
                            "region": "TH",
                            "seller_type": "LOCAL",
                            "cipher": tt.cipher,
                            "code": f"THLC{tt.shop_id[-6:]}",
                        }
                    ]
                }
            else:
                tt = self._shop(request, shop_id)
                data = self._route(tt, request, group, rest, document)
        except ApiError as error:
            return self._json(None, error.code, error.message, error.status)
        return self._json(data)

    def _page_size(self, request: Request) -> int:
        raw = request.query_params.get("page_size", "")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
            raise ApiError(36009004, "page_size must be between 1 and 100")
        return int(raw)

    def _route(
        self, tt: TikTokShop, request: Request, group: str, rest: str, doc: dict[str, Any]
    ) -> Any:
        method = request.method
        if group == "order" and rest == "orders/search" and method == "POST":
            return self._orders_search(tt, request, doc)
        if group == "order" and rest == "orders" and method == "GET":
            ids = [i for i in request.query_params.get("ids", "").split(",") if i]
            if not ids or len(ids) > MAX_DETAIL_IDS:
                raise ApiError(36009004, "ids must name 1 to 50 orders")
            found = [tt.shop.get(int(i)) for i in ids if i.isdigit()]
            return {"orders": [self.render_order(tt, o) for o in found if o is not None]}
        if group == "product" and rest == "products/search" and method == "POST":
            return self._products_search(tt, request, doc)
        if group == "product" and rest.endswith("/inventory/update") and method == "POST":
            return self._inventory_update(tt, rest.split("/")[1], doc)
        if group == "fulfillment" and rest == "packages/ship" and method == "POST":
            return self._batch_ship(tt, doc)
        if group == "fulfillment" and rest.startswith("packages/"):
            return self._fulfillment(tt, request, rest, doc)
        if group == "return_refund" and rest == "cancellations" and method == "POST":
            order = self._order_of(tt, str(doc.get("order_id")))
            status = self.render_order(tt, order)["status"]
            if status not in ("UNPAID", "ON_HOLD", "AWAITING_SHIPMENT"):
                raise ApiError(25001021, "Reason not match order status")
            self._mark(tt, order, status="CANCELLED")
            return {"cancel_id": f"57{order.order_id}", "cancel_status": "CANCELLATION_COMPLETE"}
        if group == "return_refund" and rest.startswith("cancellations/"):
            return self._cancellations(tt, rest.split("/")[1:], doc)
        raise ApiError(36009009, f"Invalid path {group}/{rest}")

    def _cancellations(self, tt: TikTokShop, parts: list[str], doc: dict[str, Any]) -> Any:
        """Buyers' requests: one pending per order whose seed status is `cancelling`."""
        if parts == ["search"]:
            found = []
            for raw in doc.get("order_ids") or []:
                order = self._order_of(tt, str(raw))
                if self.render_order(tt, order)["is_buyer_request_cancel"]:
                    found.append(
                        {
                            "cancel_id": f"57{order.order_id}",
                            "order_id": str(order.order_id),
                            "cancel_status": "CANCELLATION_REQUEST_PENDING",
                            "role": "BUYER",
                        }
                    )
            return {"cancellations": found, "total_count": len(found), "next_page_token": ""}
        if len(parts) == 2 and parts[1] in ("approve", "reject") and parts[0].startswith("57"):
            order = self._order_of(tt, parts[0][2:])
            if not self.render_order(tt, order)["is_buyer_request_cancel"]:
                raise ApiError(25001003, "The cancellation request is not pending")
            if parts[1] == "approve":
                self._mark(tt, order, status="CANCELLED", answered=True)
            else:
                self._mark(tt, order, status="AWAITING_SHIPMENT", answered=True)
            return {}
        raise ApiError(36009009, "Invalid path return_refund/cancellations")

    def _orders_search(self, tt: TikTokShop, request: Request, doc: dict[str, Any]) -> Any:
        size = self._page_size(request)
        if request.query_params.get("sort_field", "create_time") != "update_time":
            raise ApiError(36009004, "the sandbox serves sort_field=update_time only")
        ge = datetime.fromtimestamp(int(doc.get("update_time_ge") or 0), UTC)
        lt = datetime.fromtimestamp(int(doc.get("update_time_lt") or time.time() + 1), UTC)
        token = request.query_params.get("page_token") or "0"
        if not token.isdigit():
            raise ApiError(36009004, "Invalid page_token")
        offset = int(token)
        # Only the page's orders are built: the update index is bisected, not the orders.
        index = tt.shop.update_index()
        lo = bisect.bisect_left(index, (ge, -1))
        hi = bisect.bisect_left(index, (lt, -1))
        rows = [tt.shop.order(i) for _, i in index[lo + offset : min(hi, lo + offset + size)]]
        next_token = str(offset + size) if lo + offset + size < hi else ""
        return {
            "total_count": hi - lo,
            "next_page_token": next_token,
            "orders": [self.render_order(tt, o) for o in rows],
        }

    def _products_search(self, tt: TikTokShop, request: Request, doc: dict[str, Any]) -> Any:
        size = self._page_size(request)
        indexes = list(range(len(tt.shop.products)))
        sku_ids = {str(s) for s in doc.get("sku_ids") or []}
        if len(sku_ids) > 10:
            raise ApiError(36009004, "sku_ids takes at most 10")
        if sku_ids:
            indexes = [
                i
                for i in indexes
                if any(str(v.variation_id) in sku_ids for v in tt.shop.products[i].variations)
            ]
        offset = int(request.query_params.get("page_token") or 0)
        rows = indexes[offset : offset + size]
        return {
            "total_count": len(indexes),
            "next_page_token": str(offset + size) if offset + size < len(indexes) else "",
            "products": [self.render_product(tt, i) for i in rows],
        }

    def _inventory_update(self, tt: TikTokShop, product_id: str, doc: dict[str, Any]) -> Any:
        product = next((p for p in tt.shop.products if str(p.product_id) == product_id), None)
        if product is None:
            raise ApiError(12052556, "Product does not exist")
        errors = []
        for sku in doc.get("skus") or []:
            variation = next(
                (v for v in product.variations if str(v.variation_id) == str(sku.get("id"))), None
            )
            if variation is None:
                errors.append(
                    {
                        "code": 12052556,
                        "message": "SKU id not exist",
                        "detail": {"sku_id": str(sku.get("id")), "extra_errors": []},
                    }
                )
                continue
            if variation.sku in tt.shop.campaign_locked:
                errors.append(
                    {
                        "code": 12052393,
                        "message": "The inventory is locked by a promotion",
                        "detail": {"sku_id": str(sku.get("id")), "extra_errors": []},
                    }
                )
                continue
            if not self.faults.ignore_stock_updates:
                variation.stock = sum(
                    int(w.get("quantity") or 0) for w in sku.get("inventory") or []
                )
        return {"errors": errors} if errors else {}

    def _order_of(self, tt: TikTokShop, order_id: str) -> SeedOrder:
        order = tt.shop.get(int(order_id)) if order_id.isdigit() else None
        if order is None:
            raise ApiError(21008111, "The order or package does not belong to the current seller")
        return order

    def _mark(self, tt: TikTokShop, order: SeedOrder, **changes: Any) -> None:
        entry = tt.shipped.setdefault(str(order.order_id), {})
        entry.update(changes)
        entry["updated_at"] = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)

    def _package_order(self, tt: TikTokShop, package_id: str) -> SeedOrder:
        if not package_id.startswith("11"):
            raise ApiError(21011028, "Package does not belong to the shop")
        return self._order_of(tt, package_id[2:])

    def _batch_ship(self, tt: TikTokShop, doc: dict[str, Any]) -> Any:
        """Batch Ship Packages: code 0 with one `errors[]` entry per package that failed."""
        packages = doc.get("packages")
        if not isinstance(packages, list) or not packages:
            raise ApiError(36009004, "packages is required")
        if len(packages) > BATCH_SHIP_LIMIT:
            raise ApiError(36009004, f"packages takes at most {BATCH_SHIP_LIMIT}")
        errors = []
        for package in packages:
            package_id = str(package.get("id") or "") if isinstance(package, dict) else ""
            try:
                self._ship_package(tt, self._package_order(tt, package_id), package)
            except ApiError as exc:
                errors.append(
                    {"code": exc.code, "message": exc.message, "detail": {"package_id": package_id}}
                )
        return {"errors": errors} if errors else {}

    def _ship_package(self, tt: TikTokShop, order: SeedOrder, doc: Mapping[str, Any]) -> None:
        status = self.render_order(tt, order)["status"]
        if status == "CANCELLED":
            raise ApiError(21011041, "The order has been cancelled")
        if status not in SHIPPABLE:
            raise ApiError(21011040, "The package has already been shipped")
        if order.status == "cancelling":
            raise ApiError(21008044, "A cancellation request is pending")
        self_shipment = doc.get("self_shipment")
        if isinstance(self_shipment, dict):
            number = str(self_shipment.get("tracking_number") or "")
            if not number or not self_shipment.get("shipping_provider_id"):
                raise ApiError(21011022, "Invalid tracking number or shipping provider")
        else:
            if doc.get("handover_method") == "PICKUP" and not doc.get("pickup_slot"):
                raise ApiError(21011054, "pickup_slot is required")
            number = f"TT{order.order_id}TH"
        self._mark(tt, order, status="AWAITING_COLLECTION", tracking_number=number)

    def _fulfillment(self, tt: TikTokShop, request: Request, rest: str, doc: dict[str, Any]) -> Any:
        parts = rest.split("/")
        package_id, action = parts[1], "/".join(parts[2:])
        order = self._package_order(tt, package_id)
        status = self.render_order(tt, order)["status"]
        if action == "handover_time_slots":
            start = int(time.time()) // 3600 * 3600 + 86400
            return {
                "can_pickup": True,
                "can_drop_off": True,
                "pickup_slots": [
                    {
                        "start_time": start + h * 3600,
                        "end_time": start + (h + 4) * 3600,
                        "avaliable": True,
                    }
                    for h in (0, 4)
                ],
            }
        if action == "ship" and request.method == "POST":
            self._ship_package(tt, order, doc)
            return {}
        if action == "shipping_documents":
            if status in SHIPPABLE or status == "UNPAID":
                raise ApiError(
                    21023035, "Please arrange shipment before retrieving the shipping document"
                )
            # The mount's own URL: the request's path less the API path it routed.
            path = request.url.path
            mount = path[: len(path) - len(request.path_params["api"]) - 1]
            base = f"{request.url.scheme}://{request.url.netloc}{mount}"
            return {
                "doc_url": f"{base}/_documents/{package_id}.pdf",
                "tracking_number": tt.shipped.get(str(order.order_id), {}).get("tracking_number"),
            }
        raise ApiError(36009009, f"Invalid path fulfillment/{rest}")

    async def document(self, request: Request) -> Response:
        package_id = request.path_params["package_id"]
        lines = ["TikTok Shop shipping label", f"Package {package_id}", f"Order {package_id[2:]}"]
        return Response(minimal_pdf(lines), media_type="application/pdf")

    async def control_place_orders(self, request: Request) -> Response:
        """POST /_sandbox/orders {shopId?, count?, sku?, quantity?}: new paid orders now."""
        body = await self._body(request)
        tt = self.shops.get(str(body.get("shopId"))) if body.get("shopId") else None
        if tt is None and not body.get("shopId") and self.shops:
            tt = next(iter(self.shops.values()))
        if tt is None:
            return JSONResponse({"error": "unknown shopId"}, status_code=404)
        orders = place_orders(
            tt.shop,
            int(body.get("count", 1)),
            sku=body.get("sku"),
            quantity=int(body.get("quantity", 1)),
            lines=int(body.get("lines", 1)),
        )
        return JSONResponse(
            {
                "shopId": tt.shop_id,
                "orders": [
                    {"orderId": str(o.order_id), "skus": [i.sku for i in o.items]} for o in orders
                ],
            }
        )

    # --- auth host and authorization page -------------------------------------------------

    def _token_answer(self, access: Any, refresh: Any, shop_id: str) -> dict[str, Any]:
        return {
            "access_token": access.value,
            "access_token_expire_in": int(access.expires_at),
            "refresh_token": refresh.value,
            "refresh_token_expire_in": int(refresh.expires_at),
            "open_id": f"open-{shop_id}",
            "seller_name": self.shops[shop_id].name,
            "seller_base_region": "TH",
            "user_type": 0,
            "granted_scopes": ["seller.order.info", "seller.fulfillment.basic"],
        }

    async def token(self, request: Request) -> Response:
        params = request.query_params
        action = request.path_params["action"]
        app_key = params.get("app_key", "")
        if self.apps.get(app_key) is None or self.apps[app_key] != params.get("app_secret"):
            return self._json(None, 36004004, "Invalid app_key or app_secret")
        if action == "get" and params.get("grant_type") == "authorized_code":
            entry = self.codes.pop(params.get("auth_code", ""), None)
            if entry is None or entry[1] < time.time():
                return self._json(None, 36004004, "auth_code is invalid or expired")
            access, refresh = self.tokens.issue(entry[0])
            return self._json(self._token_answer(access, refresh, entry[0]))
        if action == "refresh" and params.get("grant_type") == "refresh_token":
            issued = self.tokens.use_refresh(params.get("refresh_token"))
            if issued is None:
                return self._json(None, 36004004, "refresh_token is invalid or expired")
            access, refresh = issued
            return self._json(self._token_answer(access, refresh, access.shop_key))
        return self._json(None, 36009004, "Invalid grant_type")

    async def authorize_page(self, request: Request) -> Response:
        """The seller approves at once (`deny=1` refuses): a code for the app's first shop."""
        params = request.query_params
        redirect = params.get("redirect_uri", "")
        app_key = params.get("service_id", "")
        shop = next((s for s in self.shops.values() if s.app_key == app_key), None)
        if not redirect or shop is None:
            return JSONResponse({"error": "unknown service_id or missing redirect_uri"}, 400)
        state = params.get("state", "")
        if params.get("deny"):
            query = {"code": "null", "error": "auth_denied", "state": state}
        else:
            code = secrets.token_urlsafe(16)
            self.codes[code] = (shop.shop_id, time.time() + 1800)
            query = {"code": code, "state": state}
        return RedirectResponse(
            redirect + ("&" if "?" in redirect else "?") + urlencode(query), 302
        )

    # --- control endpoints --------------------------------------------------------------

    async def _body(self, request: Request) -> dict[str, Any]:
        body = await read_json_or_none(request)
        return body if isinstance(body, dict) else {}

    async def control_shops(self, request: Request) -> Response:
        body = await self._body(request)
        credentials = self.add_shop(
            seed=str(body.get("seed", "tiktok")),
            order_count=int(body.get("orderCount", 0)),
            days=float(body.get("days", 60)),
            shop_id=str(body["shopId"]) if body.get("shopId") else None,
            name=body.get("shopName"),
            product_count=int(body.get("productCount", 20)),
        )
        return JSONResponse(credentials, status_code=201)

    async def control_faults(self, request: Request) -> Response:
        body = await self._body(request)
        if body.pop("reset", False):
            self.faults.reset()
        snake = {
            "".join(f"_{c.lower()}" if c.isupper() else c for c in k): v for k, v in body.items()
        }
        try:
            self.faults.update(snake)
        except (KeyError, TypeError, ValueError) as exc:
            return JSONResponse({"error": f"unknown or invalid fault {exc}"}, status_code=422)
        current = {f.name: getattr(self.faults, f.name) for f in fields(Faults)}
        return JSONResponse({k: v for k, v in current.items() if not k.startswith("_")})

    async def control_expire_tokens(self, request: Request) -> Response:
        self.tokens.expire_all()
        return JSONResponse({"expired": True})

    async def control_change_orders(self, request: Request) -> Response:
        body = await self._body(request)
        tt = self.shops.get(str(body.get("shopId")))
        if tt is None:
            return JSONResponse({"error": "unknown shopId"}, status_code=404)
        status = body.get("status")
        shop = tt.shop
        if body.get("orderIds"):
            ids = [int(i) for i in body["orderIds"] if str(i).isdigit()]
            found = [shop.index_of(i) for i in ids]
            changed = [shop.touch(i, status=status) for i in found if i is not None]
        elif status is None:
            changed = shop.change_fraction(float(body.get("fraction", 0)))
        else:
            fraction = float(body.get("fraction", 0))
            step = max(1, round(1 / fraction)) if fraction > 0 else 0
            indexes = list(range(0, shop.order_count, step)) if step else []
            changed = [shop.touch(i, status=status) for i in indexes]
        for order in changed:
            tt.shipped.pop(str(order.order_id), None)  # the seed's new state wins
        return JSONResponse(
            {"changed": [{"orderId": str(o.order_id), "status": o.status} for o in changed]}
        )

    async def control_send_webhooks(self, request: Request) -> Response:
        body = await self._body(request)
        tt = self.shops.get(str(body.get("shopId")))
        url = body.get("url")
        if tt is None or not isinstance(url, str):
            return JSONResponse({"error": "shopId and url are required"}, status_code=422)
        push_type = int(body.get("type", 1))
        orders = [
            o for o in (tt.shop.get(int(i)) for i in body.get("orderIds") or []) if o is not None
        ]
        raws = [push_body(self, tt, order, push_type) for order in orders]
        statuses = []
        async with httpx.AsyncClient(transport=self.webhook_transport, timeout=10) as client:
            for raw in raws:
                headers = {
                    "Authorization": push_signature(tt.app_key, tt.app_secret, raw),
                    "Content-Type": "application/json",
                }
                try:
                    response = await client.post(url, content=raw, headers=headers)
                    statuses.append(response.status_code)
                except httpx.HTTPError:
                    statuses.append(0)
        return JSONResponse({"sent": len(statuses), "statuses": statuses})


def push_body(sandbox: TikTokSandbox, tt: TikTokShop, order: SeedOrder, push_type: int) -> bytes:
    rendered = sandbox.render_order(tt, order)
    data: dict[str, Any] = {"order_id": rendered["id"], "update_time": rendered["update_time"]}
    if push_type == 11:
        data |= {
            "cancellations_role": "BUYER",
            "cancel_status": "CANCELLATION_REQUEST_PENDING",
            "cancel_id": f"57{order.order_id}",
            "create_time": rendered["update_time"],
        }
    else:
        data |= {"order_status": rendered["status"], "is_on_hold_order": False}
    message = {
        "type": push_type,
        "tts_notification_id": str(7_300_000_000_000_000_000 + secrets.randbelow(10**17)),
        "shop_id": tt.shop_id,
        "timestamp": int(time.time()),
        "data": data,
    }
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def create_app(state: TikTokSandbox | None = None) -> Starlette:
    sandbox = state or TikTokSandbox()
    routes = [
        Route("/auth/api/v2/token/{action}", sandbox.token, methods=["GET"]),
        Route("/open/authorize", sandbox.authorize_page, methods=["GET"]),
        Route("/_documents/{package_id}.pdf", sandbox.document, methods=["GET"]),
        Route("/_sandbox/shops", sandbox.control_shops, methods=["POST"]),
        Route("/_sandbox/faults", sandbox.control_faults, methods=["POST"]),
        Route("/_sandbox/tokens/expire", sandbox.control_expire_tokens, methods=["POST"]),
        Route("/_sandbox/orders/change", sandbox.control_change_orders, methods=["POST"]),
        Route("/_sandbox/webhooks/send", sandbox.control_send_webhooks, methods=["POST"]),
        Route("/_sandbox/orders", sandbox.control_place_orders, methods=["POST"]),
        Route("/{api:path}", sandbox.gateway, methods=["GET", "POST", "PUT", "DELETE"]),
    ]
    app = Starlette(routes=routes)
    app.state.sandbox = sandbox
    return app


def seed_demo(state: TikTokSandbox) -> dict[str, str]:
    """A fixed demo shop (same credentials on every run) with Thai orders."""
    credentials = state.add_shop(
        seed="tiktok-demo",
        order_count=500,
        days=30,
        shop_id="7494049642642441621",
        name="TikTok Shop Demo (Sandbox)",
        app_key="6a1b2c3d4e5f",
        app_secret="sandbox-tiktok-app-secret",
        access_token="sandbox-tiktok-access-token",
        refresh_token="sandbox-tiktok-refresh-token",
    )
    return {
        key: credentials[key]
        for key in ("apiKey", "apiSecret", "accessToken", "refreshToken", "shopId")
    }
