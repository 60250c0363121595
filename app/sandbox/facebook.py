"""A Meta Graph API sandbox for the Commerce endpoints the Facebook client calls.

Serves `/{version}/...` (any version string): Pages, their commerce account
(`commerce_merchant_settings`), `commerce_orders` with Meta's states, filters, cursor paging and
field selection, order edges (`items`, `shipments`, `cancellations`, `refunds`), the catalog
(`product_catalogs`, `products`, `items_batch`, `check_batch_request_status`). Every call needs
a live Page token (header or `access_token`) and a valid `appsecret_proof`. Control endpoints
live under `/_sandbox/`.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import hmac
import json
import math
import secrets
import time
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.sandbox import facebook_fulfillment
from app.sandbox.common import Faults, JSONResponse, apply_faults, read_json_or_none
from app.sandbox.seed import STATUSES, SeededShop, SeedOrder

ALL_STATES = ("FB_PROCESSING", "CREATED", "IN_PROGRESS", "COMPLETED")
FILTERS = (
    "HAS_CANCELLATIONS",
    "HAS_FULFILLMENTS",
    "HAS_REFUNDS",
    "NO_CANCELLATIONS",
    "NO_REFUNDS",
    "NO_SHIPMENTS",
)
# Neutral seed status -> (Meta state, shipped, cancelled, refunded). Meta knows no delivery,
# so everything that left the warehouse is COMPLETED with a shipment.
META_STATE: dict[str, tuple[str, bool, bool, bool]] = {
    "unpaid": ("FB_PROCESSING", False, False, False),
    "pending": ("CREATED", False, False, False),
    "ready_to_ship": ("IN_PROGRESS", False, False, False),
    "cancelling": ("IN_PROGRESS", False, False, False),
    "shipped": ("COMPLETED", True, False, False),
    "delivered": ("COMPLETED", True, False, False),
    "completed": ("COMPLETED", True, False, False),
    "cancelled": ("COMPLETED", False, True, False),
    "returned": ("COMPLETED", True, False, True),
    "failed": ("COMPLETED", True, False, True),
}
NEUTRAL_FOR_STATE = {
    "FB_PROCESSING": "unpaid",
    "CREATED": "pending",
    "IN_PROGRESS": "ready_to_ship",
    "COMPLETED": "completed",
}
ORDER_FIELDS = frozenset(
    {
        "id",
        "order_status",
        "created",
        "last_updated",
        "items",
        "ship_by_date",
        "merchant_order_id",
        "channel",
        "selected_shipping_option",
        "shipping_address",
        "estimated_payment_details",
        "buyer_details",
        "is_test_order",
        "is_group_buy",
        "contains_bopis_items",
    }
)
ORDER_DEFAULT_FIELDS = "id,order_status,created,last_updated"
ITEM_FIELDS = frozenset(
    {
        "id",
        "product_id",
        "retailer_id",
        "product_name",
        "quantity",
        "price_per_unit",
        "tax_details",
        "price_details",
        "ship_by",
        "status",
        "customization",
    }
)
PRODUCT_FIELDS = frozenset(
    {
        "id",
        "retailer_id",
        "name",
        "price",
        "currency",
        "availability",
        "visibility",
        "inventory",
        "quantity_to_sell_on_facebook",
        "retailer_product_group_id",
        "product_group",
        "review_status",
    }
)
ID_BASE = 10**13  # node id = page ordinal * ID_BASE + seed id, so ids are unique per sandbox
ITEM_OFFSET = 9 * 10**12
TWO_PLACES = Decimal("0.01")
FAR_PAST = datetime(1970, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)

Fields = dict[str, "Fields | None"]
T = TypeVar("T")


class GraphError(Exception):
    def __init__(
        self,
        message: str,
        *,
        code: int = 100,
        type_: str = "GraphMethodException",
        subcode: int | None = None,
        status: int = 400,
        is_transient: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.type = type_
        self.subcode = subcode
        self.status = status
        self.is_transient = is_transient
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        error: dict[str, Any] = {
            "message": self.message,
            "type": self.type,
            "code": self.code,
            "is_transient": self.is_transient,
            "fbtrace_id": "Sbx" + secrets.token_urlsafe(8),
        }
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        return JSONResponse({"error": error}, status_code=self.status, headers=self.headers)


def _missing(node: str) -> GraphError:
    return GraphError(
        f"Unsupported get request. Object with ID '{node}' does not exist, cannot be loaded due "
        "to missing permissions, or does not support this operation.",
        subcode=33,
    )


@dataclass
class SandboxPage:
    ordinal: int
    page_id: str
    name: str
    shop: SeededShop
    cms_id: str
    catalog_id: str
    app_id: str
    app_secret: str
    # Bumped by every change; change orders through FacebookSandbox.change_orders (or call
    # FacebookSandbox.changed) so cached listings are dropped.
    version: int = 0
    _rendered: dict[int, tuple[int, dict[str, Any]]] = field(default_factory=dict, repr=False)
    _by_update: list[SeedOrder] = field(default_factory=list, repr=False)
    _keys: list[tuple[datetime, int]] = field(default_factory=list, repr=False)
    _indexed_version: int = -1

    def updated_between(self, start: datetime, end: datetime) -> list[SeedOrder]:
        """`SeededShop.updated_between`, generating each order once per version of the page
        instead of once per query (a 10,000-order sync asks three listings per window)."""
        if self._indexed_version != self.version:
            orders = [self.shop.order(i) for i in range(self.shop.order_count)]
            orders.sort(key=lambda o: (o.updated_at, o.index))
            self._by_update = orders
            self._keys = [(o.updated_at, o.index) for o in orders]
            self._indexed_version = self.version
        lo = bisect.bisect_left(self._keys, (start, -1))
        hi = bisect.bisect_left(self._keys, (end, -1))
        return self._by_update[lo:hi]

    def node_id(self, seed_id: int) -> str:
        return str(self.ordinal * ID_BASE + seed_id)

    def item_id(self, variation_id: int) -> str:
        return str(self.ordinal * ID_BASE + ITEM_OFFSET + variation_id)

    def render(self, order: SeedOrder) -> dict[str, Any]:
        cached = self._rendered.get(order.index)
        if cached is not None and cached[0] == order.version:
            return cached[1]
        rendered = render_order(self, order)
        self._rendered[order.index] = (order.version, rendered)
        return rendered


@dataclass
class PageToken:
    value: str
    page_id: str
    expires_at: float


@dataclass
class FacebookSandbox:
    pages: dict[str, SandboxPage] = field(default_factory=dict)
    tokens: dict[str, PageToken] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    token_ttl_seconds: int = 60 * 86400  # long-lived tokens last about 60 days
    require_appsecret_proof: bool = True
    rate_limit_code: int = 32  # Page-level throttling: order calls count against the Page
    regain_minutes: int = 0  # estimated_time_to_regain_access in rate-limit answers
    inline_items_limit: int = 25  # Graph's default page size for an expanded edge
    webhook_client: httpx.AsyncClient | None = None
    post_paths: list[str] = field(default_factory=list)  # every Graph POST, for tests
    calls: Counter[str] = field(default_factory=Counter)  # Graph calls per edge, for tests
    _nodes: dict[str, tuple[str, SandboxPage]] = field(default_factory=dict, repr=False)
    _ordinals: dict[int, SandboxPage] = field(default_factory=dict, repr=False)
    _windows: OrderedDict[tuple[Any, ...], list[SeedOrder]] = field(
        default_factory=OrderedDict, repr=False
    )
    _batches: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    # --- set-up --------------------------------------------------------------------------

    def add_page(
        self,
        *,
        page_id: str | None = None,
        name: str | None = None,
        seed: str = "shop",
        order_count: int = 0,
        days: float = 60,
        product_count: int = 20,
        end: datetime | None = None,
    ) -> SandboxPage:
        ordinal = len(self._ordinals) + 1
        end = end or datetime.now(UTC)
        shop = SeededShop(
            seed=seed,
            order_count=order_count,
            start=end - timedelta(days=days),
            end=end,
            product_count=product_count,
        )
        page = SandboxPage(
            ordinal=ordinal,
            page_id=page_id or str(100_000_000_000_000 + ordinal),
            name=name or f"ร้านทดสอบ {seed}",
            shop=shop,
            cms_id=str(200_000_000_000_000 + ordinal),
            catalog_id=str(300_000_000_000_000 + ordinal),
            app_id=str(400_000_000_000_000 + ordinal),
            app_secret=secrets.token_hex(16),
        )
        if page.page_id in self.pages:
            raise ValueError(f"page {page.page_id} exists")
        self.pages[page.page_id] = page
        self._ordinals[ordinal] = page
        self._nodes[page.page_id] = ("page", page)
        self._nodes[page.cms_id] = ("cms", page)
        self._nodes[page.catalog_id] = ("catalog", page)
        return page

    def issue_token(self, page: SandboxPage, ttl_seconds: float | None = None) -> str:
        value = "EAAS" + secrets.token_urlsafe(32)
        ttl = self.token_ttl_seconds if ttl_seconds is None else ttl_seconds
        self.tokens[value] = PageToken(value, page.page_id, time.time() + ttl)
        return value

    def credentials(self, page: SandboxPage) -> dict[str, str]:
        return {
            "apiKey": page.app_id,
            "apiSecret": page.app_secret,
            "accessToken": self.issue_token(page),
            "shopId": page.page_id,
        }

    def expire_tokens(self, page_id: str | None = None) -> int:
        count = 0
        for token in self.tokens.values():
            if page_id is None or token.page_id == page_id:
                token.expires_at = 0
                count += 1
        return count

    # --- orders --------------------------------------------------------------------------

    def order_node(self, node: str) -> tuple[SandboxPage, SeedOrder] | None:
        if not node.isdigit():
            return None
        ordinal, seed_id = divmod(int(node), ID_BASE)
        page = self._ordinals.get(ordinal)
        order = page.shop.get(seed_id) if page is not None else None
        return None if page is None or order is None else (page, order)

    def changed(self, page: SandboxPage) -> None:
        page.version += 1
        self._windows.clear()

    def change_orders(
        self,
        page: SandboxPage,
        *,
        fraction: float | None = None,
        order_ids: list[str] | None = None,
        status: str | None = None,
    ) -> list[dict[str, str]]:
        neutral = NEUTRAL_FOR_STATE.get(status, status) if status else None
        if neutral is not None and neutral not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        changed: list[SeedOrder] = []
        if order_ids:
            for node in order_ids:
                found = self.order_node(str(node))
                if found is None or found[0] is not page:
                    raise KeyError(str(node))
                changed.append(page.shop.touch(found[1].index, status=neutral))
        elif fraction:
            changed = page.shop.change_fraction(fraction)
            if neutral is not None:
                changed = [page.shop.touch(o.index, status=neutral) for o in changed]
        self.changed(page)
        return [{"orderId": page.node_id(o.order_id), "status": o.status} for o in changed]

    def listing(
        self,
        page: SandboxPage,
        start: datetime,
        end: datetime,
        states: list[str],
        filters: list[str],
    ) -> list[SeedOrder]:
        """Orders with start <= updated < end in the given states passing the filters, newest
        update first (Meta promises no order). Kept per query, as paging re-asks it per page."""
        key = (page.page_id, page.version, start, end, tuple(states), tuple(filters))
        rows = self._windows.get(key)
        if rows is not None:
            self._windows.move_to_end(key)
            return rows
        wanted = set(states)
        rows = [
            o
            for o in reversed(page.updated_between(start, end))
            if META_STATE[o.status][0] in wanted and passes_filters(o, filters)
        ]
        self._windows[key] = rows
        while len(self._windows) > 16:
            self._windows.popitem(last=False)
        return rows


# --- rendering -------------------------------------------------------------------------------


def _amount(value: Decimal, currency: str) -> dict[str, str]:
    return {"amount": str(value.quantize(TWO_PLACES)), "currency": currency}


def graph_time(value: datetime) -> str:
    return value.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "+0000"


def render_order(page: SandboxPage, order: SeedOrder) -> dict[str, Any]:
    """A seeded order in the shape of Meta's CommerceOrder (all fields, items as a list)."""
    state = META_STATE[order.status][0]
    cur = order.currency
    gross = sum((i.unit_price * i.quantity for i in order.items), Decimal("0"))
    items = [
        {
            "id": page.node_id(item.line_id),
            "product_id": page.item_id(item.variation_id),
            "retailer_id": item.sku,
            "product_name": f"{item.name} - {item.variation}",
            "quantity": item.quantity,
            "price_per_unit": _amount(item.unit_price, cur),
            "tax_details": {"estimated_tax": _amount(Decimal("0"), cur)},
        }
        for item in order.items
    ]
    rendered: dict[str, Any] = {
        "id": page.node_id(order.order_id),
        "order_status": {"state": state},
        "created": graph_time(order.created_at),
        "last_updated": graph_time(order.updated_at),
        "items": items,
        "ship_by_date": (order.created_at + timedelta(days=3)).date().isoformat(),
        "channel": "instagram" if order.index % 5 == 0 else "facebook",
        "selected_shipping_option": {
            "name": "Standard",
            "price": _amount(order.shipping_fee, cur),
            "calculated_tax": _amount(Decimal("0"), cur),
            "estimated_shipping_time": {"min_days": 2, "max_days": 5},
        },
        "shipping_address": {
            "name": order.address.name,
            "street1": order.address.line1,
            "street2": "",
            "city": order.address.district,
            "state": order.address.province,
            "postal_code": order.address.postal_code,
            "country": order.address.country,
        },
        # Prices in Thailand include VAT; promotions show only as the gap to total_amount.
        "estimated_payment_details": {
            "subtotal": {
                "items": _amount(gross, cur),
                "shipping": _amount(order.shipping_fee, cur),
            },
            "tax": _amount(Decimal("0"), cur),
            "total_amount": _amount(order.total, cur),
            "tax_remitted": False,
        },
        "buyer_details": {
            "name": f"{order.buyer_first_name} {order.buyer_last_name}",
            "email": order.buyer_email,
            "email_remarketing_option": False,
        },
        "is_test_order": False,
        "is_group_buy": False,
        "contains_bopis_items": False,
    }
    if state in ("IN_PROGRESS", "COMPLETED"):
        rendered["merchant_order_id"] = f"OMNI-{order.order_id}"
    return rendered


def order_edges(page: SandboxPage, order: SeedOrder) -> dict[str, list[dict[str, Any]]]:
    _, shipped, cancelled, refunded = META_STATE[order.status]
    when = graph_time(order.updated_at)
    lines = [{"id": page.node_id(i.line_id), "quantity": i.quantity} for i in order.items]
    node = page.node_id(order.order_id)
    return {
        "shipments": [{"id": f"{node}01", "items": {"data": lines}, "created": when}]
        if shipped
        else [],
        "cancellations": [
            {
                "id": f"{node}02",
                "cancel_reason": {"reason_code": "CUSTOMER_REQUESTED"},
                "items": {"data": lines},
                "created": when,
            }
        ]
        if cancelled
        else [],
        "refunds": [
            {
                "id": f"{node}03",
                "reason_code": "REFUND_FOR_RETURN",
                "items": {"data": lines},
                "created": when,
            }
        ]
        if refunded
        else [],
    }


def passes_filters(order: SeedOrder, filters: list[str]) -> bool:
    _, shipped, cancelled, refunded = META_STATE[order.status]
    checks = {
        "HAS_CANCELLATIONS": cancelled,
        "NO_CANCELLATIONS": not cancelled,
        "HAS_REFUNDS": refunded,
        "NO_REFUNDS": not refunded,
        "HAS_FULFILLMENTS": shipped,
        "NO_SHIPMENTS": not shipped,
    }
    return all(checks[f] for f in filters)


def _thb_display(value: Decimal) -> str:
    return f"฿{value.quantize(TWO_PLACES):,}"


def render_products(page: SandboxPage) -> list[dict[str, Any]]:
    items = []
    for product in page.shop.products:
        for variation in product.variations:
            items.append(
                {
                    "id": page.item_id(variation.variation_id),
                    "retailer_id": variation.sku,
                    "name": f"{product.name} - {variation.name}",
                    "price": _thb_display(variation.price),
                    "currency": "THB",
                    "availability": "in stock" if variation.stock > 0 else "out of stock",
                    "visibility": "published",
                    "inventory": variation.stock,
                    "quantity_to_sell_on_facebook": variation.stock,
                    "retailer_product_group_id": f"PG-{product.product_id}",
                    "product_group": {
                        "id": page.item_id(product.product_id),
                        "retailer_id": f"PG-{product.product_id}",
                    },
                    "review_status": "approved",
                }
            )
    return items


# --- request parsing ---------------------------------------------------------------------------


def parse_retailer_filter(text: str) -> set[str]:
    """The catalog `filter` rule this sandbox knows: `{"retailer_id": {"is_any": [...]}}` or
    `{"retailer_id": {"eq": "..."}}`."""
    try:
        rule = json.loads(text)
    except ValueError:
        rule = None
    condition = rule.get("retailer_id") if isinstance(rule, dict) and len(rule) == 1 else None
    if isinstance(condition, dict) and isinstance(condition.get("is_any"), list):
        return {str(value) for value in condition["is_any"]}
    if isinstance(condition, dict) and isinstance(condition.get("eq"), str):
        return {condition["eq"]}
    raise GraphError("(#100) Param filter must be a retailer_id rule (is_any or eq) here")


def parse_fields(text: str) -> Fields:
    """`a,b{c,d.limit(5)},e` -> {"a": None, "b": {"c": None, "d": None}, "e": None}."""
    fields, rest = _parse_fields(text.replace(" ", ""), 0)
    if rest != len(text.replace(" ", "")):
        raise GraphError("(#100) Syntax error in the fields parameter")
    return fields


def _parse_fields(text: str, pos: int) -> tuple[Fields, int]:
    fields: Fields = {}
    name = ""
    while pos < len(text):
        char = text[pos]
        if char == "{":
            sub, pos = _parse_fields(text, pos + 1)
            if pos >= len(text) or text[pos] != "}":
                raise GraphError("(#100) Syntax error in the fields parameter")
            fields[_base_name(name)] = sub
            name = ""
        elif char == "}":
            break
        elif char == ",":
            if name:
                fields[_base_name(name)] = None
            name = ""
        elif char == "(":
            close = text.find(")", pos)
            if close < 0:
                raise GraphError("(#100) Syntax error in the fields parameter")
            name += text[pos : close + 1]
            pos = close
        else:
            name += char
        pos += 1
    if name:
        fields[_base_name(name)] = None
    return fields, pos


def _base_name(name: str) -> str:
    return name.split(".", 1)[0]


def select(
    node: dict[str, Any], fields: Fields, known: frozenset[str], kind: str
) -> dict[str, Any]:
    for name in fields:
        if name not in known:
            raise GraphError(
                f"(#100) Tried accessing nonexisting field ({name}) on node type ({kind})"
            )
    out = {"id": node["id"]}
    for name in fields:
        if name in node:
            out[name] = node[name]
    return out


def parse_list(value: str | None) -> list[str]:
    if not value:
        return []
    text = value.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            raise GraphError("(#100) Invalid list parameter") from exc
        return [str(v).strip().upper() for v in parsed] if isinstance(parsed, list) else []
    return [part.strip().upper() for part in text.split(",") if part.strip()]


def parse_time(value: str | None, *, after: bool) -> datetime:
    """Unix seconds (or ISO 8601); both bounds exclusive, on whole-second update times."""
    if value is None or value == "":
        return FAR_PAST if after else FAR_FUTURE
    try:
        seconds = float(value)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise GraphError(f"(#100) Invalid timestamp: {value}") from exc
        seconds = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    bound = math.floor(seconds) + 1 if after else math.ceil(seconds)
    return datetime.fromtimestamp(bound, UTC)


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"sbx:{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, offset = text.split(":", 1)
        if prefix != "sbx":
            raise ValueError(prefix)
        return max(0, int(offset))
    except (ValueError, UnicodeDecodeError) as exc:
        raise GraphError("(#100) Invalid cursor", subcode=1349139) from exc


def page_limit(params: dict[str, str], default: int = 25) -> int:
    try:
        limit = int(params.get("limit", default))
    except ValueError as exc:
        raise GraphError("(#100) Param limit must be an integer") from exc
    return max(1, min(100, limit))


# --- the Graph app -----------------------------------------------------------------------------


class GraphContext:
    def __init__(
        self, request: Request, params: dict[str, str], token: str, version: str, path: str
    ) -> None:
        self.request = request
        self.params = params
        self.token = token
        self.version = version
        self.path = path

    def next_url(self, path: str, params: dict[str, str], after: str) -> str:
        # Like Meta's, the `next` URL repeats the token and proof: clients must not store it.
        query = {k: v for k, v in params.items() if k not in ("after", "before")}
        query.update({"access_token": self.token, "after": after})
        base = str(self.request.base_url).rstrip("/")
        return f"{base}/{self.version}/{path}?{urlencode(query)}"

    def paged(
        self, path: str, rows: Sequence[T], offset: int, limit: int
    ) -> tuple[list[T], dict[str, Any] | None]:
        """One page of `rows` and its Graph `paging` (None when the page is empty)."""
        data = list(rows[offset : offset + limit])
        if not data:
            return data, None
        paging: dict[str, Any] = {
            "cursors": {"before": encode_cursor(offset), "after": encode_cursor(offset + limit)}
        }
        if offset + limit < len(rows):
            paging["next"] = self.next_url(path, self.params, encode_cursor(offset + limit))
        return data, paging

    def listing(
        self, path: str, rows: Sequence[dict[str, Any]], offset: int, limit: int
    ) -> dict[str, Any]:
        data, paging = self.paged(path, rows, offset, limit)
        return {"data": data, "paging": paging} if paging is not None else {"data": []}

    def offset(self) -> int:
        if self.params.get("after"):
            return decode_cursor(self.params["after"])
        if self.params.get("before"):
            return max(0, decode_cursor(self.params["before"]) - page_limit(self.params))
        return 0


class GraphApp:
    def __init__(self, state: FacebookSandbox) -> None:
        self.state = state

    async def endpoint(self, request: Request) -> Response:
        try:
            return await self.handle(request)
        except GraphError as exc:
            return exc.response()

    def _rate_limited(self) -> Response:
        usage = {
            "type": "pages",
            "call_count": 100,
            "total_cputime": 30,
            "total_time": 40,
            "estimated_time_to_regain_access": self.state.regain_minutes,
        }
        return GraphError(
            "(#32) Page request limit reached",
            code=self.state.rate_limit_code,
            type_="OAuthException",
            status=400,
            headers={"X-Business-Use-Case-Usage": json.dumps({"sandbox": [usage]})},
        ).response()

    @staticmethod
    def _server_error() -> Response:
        return GraphError(
            "An unexpected error has occurred. Please retry your request later.",
            code=2,
            type_="OAuthException",
            status=500,
            is_transient=True,
        ).response()

    async def handle(self, request: Request) -> Response:
        params = dict(request.query_params)
        if request.method == "POST":
            params.update(await _body_params(request))
        fault = await apply_faults(
            self.state.faults, rate_limited=self._rate_limited, server_error=self._server_error
        )
        if fault is not None:
            return fault
        token = self._authenticate(request, params)
        page = self.state.pages[token.page_id]
        version = request.path_params["version"]
        path = request.path_params["path"].strip("/")
        ctx = GraphContext(request, params, token.value, version, path)
        parts = path.split("/")
        if request.method == "POST":
            self.state.post_paths.append(path)
        if len(parts) > 2 or not parts[0]:
            raise _missing(path)
        node, edge = parts[0], (parts[1] if len(parts) == 2 else None)
        self.state.calls[edge or "node"] += 1
        if node == "me":
            # With a Page token, /me is that Page (reference §3.5): how a client learns which
            # Page a token belongs to.
            node = page.page_id
        return JSONResponse(self._dispatch(ctx, page, request.method, node, edge))

    def _authenticate(self, request: Request, params: dict[str, str]) -> PageToken:
        header = request.headers.get("authorization", "")
        value = header[7:].strip() if header.lower().startswith("bearer ") else None
        value = value or params.get("access_token")
        if not value:
            raise GraphError(
                "An access token is required to request this resource.",
                code=104,
                type_="OAuthException",
            )
        token = self.state.tokens.get(value)
        if token is None:
            raise GraphError(
                "Invalid OAuth access token - Cannot parse access token",
                code=190,
                type_="OAuthException",
            )
        if self.state.faults.expire_tokens_next > 0:
            self.state.faults.expire_tokens_next -= 1
            token.expires_at = 0
        if token.expires_at <= time.time():
            raise GraphError(
                "Error validating access token: Session has expired.",
                code=190,
                subcode=463,
                type_="OAuthException",
            )
        page = self.state.pages[token.page_id]
        if self.state.require_appsecret_proof:
            proof = params.get("appsecret_proof")
            if not proof:
                raise GraphError("API calls from the server require an appsecret_proof argument")
            expected = hmac.new(
                page.app_secret.encode(), token.value.encode(), hashlib.sha256
            ).hexdigest()
            if not hmac.compare_digest(proof.encode(), expected.encode()):
                raise GraphError("Invalid appsecret_proof provided in the API argument")
        return token

    def _dispatch(
        self, ctx: GraphContext, page: SandboxPage, method: str, node: str, edge: str | None
    ) -> dict[str, Any]:
        known = self.state._nodes.get(node)
        if known is None:
            found = self.state.order_node(node)
            if found is None or found[0] is not page:
                raise _missing(node)
            if method != "GET":
                # Shipments and cancellations (app/sandbox/facebook_fulfillment.py).
                return facebook_fulfillment.order_post(self.state, page, found[1], edge, ctx.params)
            return self._order(ctx, page, found[1], edge)
        kind, owner = known
        if owner is not page and (method, kind, edge) == ("GET", "page", None):
            # Like Meta, a Page's public fields can be read with any valid token, so reading
            # /{page-id} proves nothing about whose token it is.
            return self._page(ctx, owner)
        if owner is not page:
            raise _missing(node)
        handler = {
            ("GET", "page", None): self._page,
            ("GET", "page", "commerce_merchant_settings"): self._page_cms,
            ("GET", "cms", None): self._cms,
            ("GET", "cms", "commerce_orders"): self._orders,
            ("GET", "cms", "product_catalogs"): self._catalogs,
            ("GET", "catalog", "products"): self._products,
            ("POST", "catalog", "items_batch"): self._items_batch,
            ("GET", "catalog", "check_batch_request_status"): self._batch_status,
        }.get((method, kind, edge))
        if handler is None:
            raise GraphError(f"(#100) Tried accessing nonexisting field ({edge}) on node {node}")
        return handler(ctx, page)

    # --- nodes and edges -----------------------------------------------------------------

    def _page(self, ctx: GraphContext, page: SandboxPage) -> dict[str, Any]:
        fields = parse_fields(ctx.params.get("fields") or "id,name")
        node = {"id": page.page_id, "name": page.name, "category": "Shopping & Retail"}
        return select(node, fields, frozenset({"id", "name", "category"}), "Page")

    def _page_cms(self, ctx: GraphContext, page: SandboxPage) -> dict[str, Any]:
        return {"data": [{"id": page.cms_id}], "paging": {"cursors": {}}}

    def _cms(self, ctx: GraphContext, page: SandboxPage) -> dict[str, Any]:
        fields = parse_fields(ctx.params.get("fields") or "id")
        node = {"id": page.cms_id, "display_name": page.name, "merchant_status": "ENABLED"}
        known = frozenset({"id", "display_name", "merchant_status"})
        return select(node, fields, known, "CommerceMerchantSettings")

    def _catalogs(self, ctx: GraphContext, page: SandboxPage) -> dict[str, Any]:
        return {"data": [{"id": page.catalog_id, "name": f"{page.name} catalog"}]}

    def _orders(self, ctx: GraphContext, page: SandboxPage) -> dict[str, Any]:
        params = ctx.params
        states = parse_list(params.get("state")) or ["CREATED"]  # Meta's default
        for state in states:
            if state not in ALL_STATES:
                raise GraphError(f"(#100) Param state must be one of {{{', '.join(ALL_STATES)}}}")
        filters = parse_list(params.get("filters"))
        for name in filters:
            if name not in FILTERS:
                raise GraphError(f"(#100) Param filters must be one of {{{', '.join(FILTERS)}}}")
        start = parse_time(params.get("updated_after"), after=True)
        end = parse_time(params.get("updated_before"), after=False)
        fields = parse_fields(params.get("fields") or ORDER_DEFAULT_FIELDS)
        rows = self.state.listing(page, start, end, states, filters)
        chunk, paging = ctx.paged(ctx.path, rows, ctx.offset(), page_limit(params))
        if paging is None:
            return {"data": []}
        return {"data": [self._render(ctx, page, o, fields) for o in chunk], "paging": paging}

    def _render(
        self, ctx: GraphContext, page: SandboxPage, order: SeedOrder, fields: Fields
    ) -> dict[str, Any]:
        out = select(page.render(order), fields, ORDER_FIELDS, "CommerceOrder")
        if "items" in out:
            sub = fields.get("items") or {"id": None}
            rows = [select(i, sub, ITEM_FIELDS, "CommerceOrderItem") for i in out["items"]]
            out["items"] = ctx.listing(f"{out['id']}/items", rows, 0, self.state.inline_items_limit)
        return out

    def _order(
        self, ctx: GraphContext, page: SandboxPage, order: SeedOrder, edge: str | None
    ) -> dict[str, Any]:
        if edge is None:
            fields = parse_fields(ctx.params.get("fields") or ORDER_DEFAULT_FIELDS)
            return self._render(ctx, page, order, fields)
        if edge == "items":
            fields = parse_fields(ctx.params.get("fields") or "id")
            items = page.render(order)["items"]
            rows = [select(i, fields, ITEM_FIELDS, "CommerceOrderItem") for i in items]
        elif edge in ("shipments", "cancellations", "refunds"):
            rows = order_edges(page, order)[edge]
            fields = parse_fields(ctx.params.get("fields") or "id")
            rows = [{k: v for k, v in r.items() if k in fields or k == "id"} for r in rows]
        else:
            raise GraphError(f"(#100) Tried accessing nonexisting field ({edge})")
        return ctx.listing(ctx.path, rows, ctx.offset(), page_limit(ctx.params))

    def _products(self, ctx: GraphContext, page: SandboxPage) -> dict[str, Any]:
        fields = parse_fields(ctx.params.get("fields") or "id")
        products = render_products(page)
        if ctx.params.get("filter"):
            wanted = parse_retailer_filter(ctx.params["filter"])
            products = [p for p in products if p["retailer_id"] in wanted]
        rows = [select(p, fields, PRODUCT_FIELDS, "ProductItem") for p in products]
        return ctx.listing(ctx.path, rows, ctx.offset(), page_limit(ctx.params))

    def _items_batch(self, ctx: GraphContext, page: SandboxPage) -> dict[str, Any]:
        if ctx.params.get("item_type", "").upper() != "PRODUCT_ITEM":
            raise GraphError("(#100) Param item_type must be PRODUCT_ITEM in this sandbox")
        try:
            requests = json.loads(ctx.params.get("requests") or "")
        except ValueError as exc:
            raise GraphError("(#100) Param requests must be a JSON array") from exc
        if not isinstance(requests, list) or len(requests) > 5000:
            raise GraphError("(#100) Param requests must be an array of at most 5000 entries")
        upsert = ctx.params.get("allow_upsert", "true").lower() not in ("false", "0")
        statuses, invalid = [], []
        for entry in requests:
            data = entry.get("data") if isinstance(entry, dict) else None
            retailer_id = str(data.get("id")) if isinstance(data, dict) else ""
            errors = self._apply_item(page, entry, upsert, self.state.faults.ignore_stock_updates)
            statuses.append({"retailer_id": retailer_id, "errors": errors, "warnings": []})
            if errors:
                invalid.append(retailer_id)
        handle = "SBX" + secrets.token_urlsafe(24)
        self.state._batches[handle] = {
            "handle": handle,
            "status": "finished",
            "errors_total_count": len(invalid),
            "errors": [{"id": i, "message": "Item not updated"} for i in invalid],
            "warnings": [],
            "ids_of_invalid_requests": invalid,
        }
        self.state.changed(page)
        return {"handles": [handle], "validation_status": statuses}

    @staticmethod
    def _apply_item(
        page: SandboxPage, entry: object, upsert: bool, ignore: bool = False
    ) -> list[dict[str, str]]:
        if not isinstance(entry, dict) or not isinstance(entry.get("data"), dict):
            return [{"message": "Each request needs method and data"}]
        if str(entry.get("method", "")).upper() != "UPDATE":
            return [{"message": "Only UPDATE is supported by this sandbox"}]
        data = entry["data"]
        found = page.shop.variation_by_sku(str(data.get("id")))
        if found is None:
            message = "Upsert is not supported by this sandbox" if upsert else "Item not found"
            return [{"message": f"{message}: retailer id {data.get('id')}"}]
        quantity = data.get("quantity_to_sell_on_facebook", data.get("inventory"))
        if quantity is None:
            return []
        if isinstance(quantity, bool) or not str(quantity).isdigit():
            return [{"message": "quantity_to_sell_on_facebook must be a whole number >= 0"}]
        if found[1].sku in page.shop.campaign_locked:
            return [{"message": "Inventory can't be changed while the item is in a promotion"}]
        if not ignore:
            found[1].stock = int(str(quantity))
        return []

    def _batch_status(self, ctx: GraphContext, page: SandboxPage) -> dict[str, Any]:
        batch = self.state._batches.get(ctx.params.get("handle", ""))
        if batch is None:
            raise GraphError("(#100) Invalid handle")
        if ctx.params.get("load_ids_of_invalid_requests", "false").lower() != "true":
            batch = {**batch, "ids_of_invalid_requests": []}
        return {"data": [batch]}


async def _body_params(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").startswith("application/json"):
        body = await read_json_or_none(request)
        if not isinstance(body, dict):
            raise GraphError("(#100) Malformed JSON body")
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}
    # Form bodies are parsed by hand: python-multipart is not a dependency.
    try:
        text = (await request.body()).decode()
    except UnicodeDecodeError as exc:
        raise GraphError("(#100) Body must be UTF-8") from exc
    return dict(parse_qsl(text, keep_blank_values=True))


# --- control endpoints -------------------------------------------------------------------------


def _control_error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": {"message": message}}, status_code=status)


class ControlApp:
    def __init__(self, state: FacebookSandbox) -> None:
        self.state = state

    async def _body(self, request: Request) -> dict[str, Any]:
        body = await read_json_or_none(request)
        return body if isinstance(body, dict) else {}

    def _page(self, body: dict[str, Any]) -> SandboxPage:
        page = self.state.pages.get(str(body.get("shopId", "")))
        if page is None:
            raise KeyError("unknown shopId")
        return page

    async def shops(self, request: Request) -> Response:
        body = await self._body(request)
        try:
            page = self.state.add_page(
                page_id=str(body["shopId"]) if body.get("shopId") else None,
                name=body.get("shopName"),
                seed=str(body.get("seed", "shop")),
                order_count=int(body.get("orderCount", 0)),
                days=float(body.get("days", 60)),
                product_count=int(body.get("productCount", 20)),
            )
        except (TypeError, ValueError) as exc:
            return _control_error(str(exc))
        return JSONResponse(
            {
                **self.state.credentials(page),
                "shopName": page.name,
                "commerceMerchantSettingsId": page.cms_id,
                "catalogId": page.catalog_id,
            },
            status_code=201,
        )

    async def faults(self, request: Request) -> Response:
        body = await self._body(request)
        extras = {
            "regainMinutes": "regain_minutes",
            "rateLimitCode": "rate_limit_code",
            "inlineItemsLimit": "inline_items_limit",
        }
        try:
            if body.pop("reset", False):
                self.state.faults.reset()
            for key, attr in extras.items():
                if key in body:
                    setattr(self.state, attr, int(body.pop(key)))
            self.state.faults.update(body)
        except (KeyError, TypeError, ValueError) as exc:
            return _control_error(f"unknown or invalid fault: {exc}")
        return JSONResponse({"ok": True})

    async def change_orders(self, request: Request) -> Response:
        body = await self._body(request)
        try:
            page = self._page(body)
            ids = body.get("orderIds")
            changed = self.state.change_orders(
                page,
                fraction=float(body["fraction"]) if body.get("fraction") is not None else None,
                order_ids=[str(i) for i in ids] if isinstance(ids, list) else None,
                status=str(body["status"]) if body.get("status") else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            return _control_error(f"cannot change orders: {exc}")
        return JSONResponse({"changed": changed})

    async def expire_tokens(self, request: Request) -> Response:
        body = await self._body(request)
        shop = body.get("shopId")
        return JSONResponse({"expired": self.state.expire_tokens(str(shop) if shop else None)})

    async def send_webhook(self, request: Request) -> Response:
        body = await self._body(request)
        try:
            page = self._page(body)
            url = str(body["url"])
        except KeyError as exc:
            return _control_error(f"missing {exc}")
        ids = body.get("orderIds")
        if isinstance(ids, list) and ids:
            found = [self.state.order_node(str(i)) for i in ids]
            orders = [f[1] for f in found if f is not None and f[0] is page]
        else:
            orders = page.updated_between(FAR_PAST, FAR_FUTURE)[-1:]
        kind = str(body.get("field", "commerce_orders"))
        if kind == "feed":
            payload = feed_payload(page, str(body.get("message", "CF A1")))
        elif kind == "messages":
            payload = messages_payload(page, str(body.get("message", "สนใจค่ะ")))
        elif kind == "commerce_orders":
            payload = webhook_payload(page, orders)
        else:
            return _control_error("field must be commerce_orders, feed or messages")
        raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": "sha256="
            + hmac.new(page.app_secret.encode(), raw, hashlib.sha256).hexdigest(),
            "X-Hub-Signature": "sha1="
            + hmac.new(page.app_secret.encode(), raw, hashlib.sha1).hexdigest(),
        }
        client = self.state.webhook_client
        try:
            if client is not None:
                answer = await client.post(url, content=raw, headers=headers)
            else:
                async with httpx.AsyncClient(timeout=10) as own:
                    answer = await own.post(url, content=raw, headers=headers)
        except httpx.HTTPError as exc:
            return _control_error(f"delivery failed: {type(exc).__name__}", status=502)
        return JSONResponse(
            {"status": answer.status_code, "orderIds": [page.node_id(o.order_id) for o in orders]}
        )


def webhook_payload(page: SandboxPage, orders: list[SeedOrder]) -> dict[str, Any]:
    """Generic Graph webhook envelope. Meta documents no commerce-order topic (unconfirmed):
    the sandbox names the field `commerce_orders` and carries the order id and state."""
    now = int(time.time())
    return {
        "object": "page",
        "entry": [
            {
                "id": page.page_id,
                "time": now,
                "changes": [
                    {
                        "field": "commerce_orders",
                        "value": {
                            "order_id": page.node_id(o.order_id),
                            "merchant_settings_id": page.cms_id,
                            "state": META_STATE[o.status][0],
                            "last_updated": graph_time(o.updated_at),
                        },
                    }
                    for o in orders
                ],
            }
        ],
    }


def feed_payload(page: SandboxPage, message: str) -> dict[str, Any]:
    """A Page `feed` change for a new comment, as in reference §6."""
    now = int(time.time())
    post_id = f"{page.page_id}_{now}"
    return {
        "object": "page",
        "entry": [
            {
                "id": page.page_id,
                "time": now,
                "changes": [
                    {
                        "field": "feed",
                        "value": {
                            "item": "comment",
                            "verb": "add",
                            "comment_id": f"{post_id}_{secrets.randbelow(10**9)}",
                            "post_id": post_id,
                            "parent_id": post_id,
                            "message": message,
                            "from": {"id": "6100000000001", "name": "ลูกค้า ทดสอบ"},
                            "created_time": now,
                        },
                    }
                ],
            }
        ],
    }


def messages_payload(page: SandboxPage, text: str) -> dict[str, Any]:
    """A Messenger message to the Page (`entry[].messaging[]`)."""
    now_ms = int(time.time() * 1000)
    return {
        "object": "page",
        "entry": [
            {
                "id": page.page_id,
                "time": now_ms,
                "messaging": [
                    {
                        "sender": {"id": "7100000000001"},
                        "recipient": {"id": page.page_id},
                        "timestamp": now_ms,
                        "message": {"mid": f"m_{secrets.token_hex(8)}", "text": text},
                    }
                ],
            }
        ],
    }


def create_app(state: FacebookSandbox | None = None) -> Starlette:
    sandbox = state if state is not None else FacebookSandbox()
    graph = GraphApp(sandbox)
    control = ControlApp(sandbox)
    app = Starlette(
        routes=[
            Route("/_sandbox/shops", control.shops, methods=["POST"]),
            Route("/_sandbox/faults", control.faults, methods=["POST"]),
            Route("/_sandbox/orders/change", control.change_orders, methods=["POST"]),
            Route("/_sandbox/tokens/expire", control.expire_tokens, methods=["POST"]),
            Route("/_sandbox/webhooks/send", control.send_webhook, methods=["POST"]),
            Route(
                "/_sandbox/orders",
                facebook_fulfillment.place_orders_endpoint(sandbox),
                methods=["POST"],
            ),
            Route("/{version}/{path:path}", graph.endpoint, methods=["GET", "POST", "DELETE"]),
        ]
    )
    app.state.sandbox = sandbox
    return app


def seed_demo(state: FacebookSandbox) -> dict[str, str]:
    """A demo Page with a few hundred orders; returns the credentials to connect it with."""
    page = state.add_page(seed="demo", order_count=500, days=30, name="ร้านเดโม่ Facebook")
    return state.credentials(page)
