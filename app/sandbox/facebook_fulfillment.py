"""Meta order shipments and cancellations in the sandbox (reference §3): `POST
/{order-id}/shipments` (idempotency_key required, one tracking number per shipment, only
orders out of FB_PROCESSING and not finished) and `POST /{order-id}/cancellations` (only
un-shipped orders). A repeated idempotency key answers as the first call did."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from app.sandbox.fulfillment import book_of, place_orders
from app.sandbox.seed import SeedOrder

if TYPE_CHECKING:
    from app.sandbox.facebook import FacebookSandbox, SandboxPage

REASON_CODES = frozenset(
    {
        "CUSTOMER_REQUESTED",
        "OUT_OF_STOCK",
        "INVALID_ADDRESS",
        "SUSPICIOUS_ORDER",
        "CANCEL_REASON_OTHER",
    }
)
SHIPPABLE = frozenset({"pending", "ready_to_ship"})  # CREATED, IN_PROGRESS


def _error(message: str) -> Exception:
    from app.sandbox.facebook import GraphError

    return GraphError(f"(#100) {message}")


def _json_param(params: dict[str, str], name: str) -> dict[str, Any]:
    try:
        value = json.loads(params.get(name) or "{}")
    except ValueError:
        raise _error(f"Param {name} must be a JSON object") from None
    if not isinstance(value, dict):
        raise _error(f"Param {name} must be a JSON object")
    return value


def order_post(
    state: FacebookSandbox,
    page: SandboxPage,
    order: SeedOrder,
    edge: str | None,
    params: dict[str, str],
) -> dict[str, Any]:
    key = params.get("idempotency_key")
    if not key:
        raise _error("The parameter idempotency_key is required")
    book = book_of(page)
    entry = book.of(order)
    if key in entry.idempotency:
        return {"success": True}
    if edge == "shipments":
        tracking = _json_param(params, "tracking_info")
        if order.status not in SHIPPABLE:
            raise _error(
                f"Order {page.node_id(order.order_id)} cannot be shipped: it is {order.status}"
            )
        package = next((p for p in entry.packages if not p.shipped), None)
        if package is None:
            raise _error("All items of this order have already been shipped")
        book.ship(order, package, "tracking", str(tracking.get("tracking_number") or "") or None)
        entry.idempotency[key] = package.number
        if book.all_shipped(order):
            state.change_orders(page, order_ids=[page.node_id(order.order_id)], status="shipped")
        return {"success": True}
    if edge == "cancellations":
        reason = _json_param(params, "cancel_reason").get("reason_code", "CANCEL_REASON_OTHER")
        if reason not in REASON_CODES:
            raise _error(f"Invalid reason_code {reason}")
        if order.status not in SHIPPABLE or any(p.shipped for p in entry.packages):
            raise _error("Only un-shipped orders can be cancelled")
        entry.idempotency[key] = "cancelled"
        state.change_orders(page, order_ids=[page.node_id(order.order_id)], status="cancelled")
        return {"success": True}
    raise _error(f"Unsupported post request on order edge {edge}")


def place_orders_endpoint(state: FacebookSandbox) -> Any:
    """POST /_sandbox/orders {shopId?, count?, sku?, quantity?}: new orders on a Page."""
    from app.sandbox.common import JSONResponse, read_json_or_none

    async def endpoint(request: Request) -> Response:
        body = await read_json_or_none(request)
        body = body if isinstance(body, dict) else {}
        page = state.pages.get(str(body["shopId"])) if body.get("shopId") else None
        if page is None and not body.get("shopId") and state.pages:
            page = next(iter(state.pages.values()))
        if page is None:
            return JSONResponse({"error": "sandbox_error", "message": "unknown shopId"}, 404)
        orders = place_orders(
            page.shop,
            int(body.get("count", 1)),
            sku=body.get("sku"),
            quantity=int(body.get("quantity", 1)),
            lines=int(body.get("lines", 1)),
        )
        state.changed(page)
        return JSONResponse(
            {
                "shopId": page.page_id,
                "orders": [{"orderId": page.node_id(o.order_id)} for o in orders],
            }
        )

    return endpoint
