"""Lazada fulfillment in the sandbox (reference fulfillment-and-tiktok.md §2): shipment
providers, `/order/fulfill/pack` (per-item `item_err_code`, at most 20 orders),
`/order/package/rts`, `/order/package/document/get` (base64 PDF), reverse-order cancel
validate/create and the seller's decision on a buyer's request. Item rows read back show the
package, status and tracking number the book holds."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from app.sandbox.fulfillment import Package, book_of, label_for, place_orders
from app.sandbox.seed import SeedOrder

if TYPE_CHECKING:
    from app.sandbox.lazada import LazadaSandbox, LazadaShop

MAX_BATCH = 20
PACKABLE = frozenset({"pending"})
CANCEL_REASONS = (
    (10000019, "Sourcing Delay"),
    (10000021, "Out of Stock"),
    (10000023, "Wrong Price or Pricing Error"),
)
PROVIDER = "Flash Express"

Handler = Callable[["LazadaShop | None", dict[str, str]], dict[str, Any]]


def _api_error(code: str, message: str) -> Exception:
    from app.sandbox.lazada import ApiError

    return ApiError(code, message)


def _req(params: dict[str, str], name: str) -> dict[str, Any]:
    try:
        value = json.loads(params.get(name, ""))
    except ValueError:
        raise _api_error("700004", f"PARAM_ILLEGAL: {name} is not JSON") from None
    if not isinstance(value, dict):
        raise _api_error("700004", f"PARAM_ILLEGAL: {name} must be an object")
    return value


def _result(data: dict[str, Any]) -> dict[str, Any]:
    return {"result": {"success": True, "data": data, "error_code": "", "error_msg": ""}}


def _order(lz: LazadaShop, order_id: object) -> SeedOrder | None:
    try:
        return lz.shop.get(int(str(order_id)))
    except ValueError:
        return None


def _package_of(lz: LazadaShop, package_id: str) -> tuple[SeedOrder, Package] | None:
    if not package_id.startswith("FP") or not package_id[2:].isdigit():
        return None
    order = lz.shop.get(int(package_id[2:]))
    if order is None:
        return None
    return order, book_of(lz).of(order).packages[0]


def _package_id(order: SeedOrder) -> str:
    return f"FP{order.order_id}"


def _item(row_id: object, code: str, msg: str, **extra: Any) -> dict[str, Any]:
    return {"order_item_id": row_id, "item_err_code": code, "msg": msg, "retry": False, **extra}


def pack(lz: LazadaShop | None, params: dict[str, str]) -> dict[str, Any]:
    assert lz is not None
    request = _req(params, "packReq")
    orders = request.get("pack_order_list") or []
    if len(orders) > MAX_BATCH:
        raise _api_error("700022", "BATCH_SIZE_OUT_OF_LIMIT")
    if request.get("delivery_type") != "dropship":
        raise _api_error("700004", "PARAM_ILLEGAL: delivery_type must be dropship")
    if request.get("shipping_allocate_type") == "TFS" and request.get("shipment_provider_code"):
        raise _api_error("700004", "PARAM_ILLEGAL: shipment_provider_code must be empty for TFS")
    book = book_of(lz)
    answered = []
    for entry in orders:
        order = _order(lz, entry.get("order_id"))
        items = entry.get("order_item_list") or []
        if order is None:
            rows = [_item(i, "700021", "ORDER_NOT_FOUND") for i in items]
        else:
            package = book.of(order).packages[0]
            known = {item.line_id * 10 + unit for item in order.items for unit in range(99)}
            allowed = order.status in PACKABLE and package.method is None
            rows = []
            for item_id in items:
                if item_id not in known:
                    rows.append(_item(item_id, "700025", "ORDER_ITEM_NOT_FOUND"))
                elif not allowed:
                    rows.append(_item(item_id, "700026", "FO_ITEM_NOT_ALLOW_TO_PACK"))
                else:
                    rows.append(
                        _item(
                            item_id,
                            "0",
                            "",
                            package_id=_package_id(order),
                            tracking_number=f"TH{order.order_id}LZ",
                            shipment_provider=PROVIDER,
                        )
                    )
            if allowed and items and all(r["item_err_code"] == "0" for r in rows):
                package.method = "packed"
                package.tracking_number = f"TH{order.order_id}LZ"
        answered.append({"order_id": entry.get("order_id"), "order_item_list": rows})
    # success: true even when items failed: what the reference warns about.
    return _result({"pack_order_list": answered})


def ready_to_ship(lz: LazadaShop | None, params: dict[str, str]) -> dict[str, Any]:
    assert lz is not None
    packages = _req(params, "readyToShipReq").get("packages") or []
    if len(packages) > MAX_BATCH:
        raise _api_error("700022", "BATCH_SIZE_OUT_OF_LIMIT")
    answered = []
    for entry in packages:
        package_id = str(entry.get("package_id") or "")
        found = _package_of(lz, package_id)
        row = {"package_id": package_id, "retry": False}
        if found is None:
            answered.append({**row, "item_err_code": "600001", "msg": "package not found"})
            continue
        order, package = found
        if order.status == "cancelled":
            answered.append({**row, "item_err_code": "600002", "msg": "package already cancelled"})
        elif package.method != "packed" and not package.shipped:
            answered.append(
                {**row, "item_err_code": "700000", "msg": "PACKAGE_STATUS_NOT_ALLOW_TO_OP"}
            )
        else:
            if not package.shipped:
                package.shipped = True
                lz.shop.touch(order.index, status="ready_to_ship")
            answered.append({**row, "item_err_code": "0", "msg": ""})
    return _result({"packages": answered})


def shipment_providers(lz: LazadaShop | None, params: dict[str, str]) -> dict[str, Any]:
    orders = _req(params, "getShipmentProvidersReq").get("orders") or []
    if len(orders) > MAX_BATCH:
        raise _api_error("700022", "BATCH_SIZE_OUT_OF_LIMIT")
    return _result(
        {
            "platform_default": 1,
            "shipping_allocate_type": "TFS",
            "shipment_providers": [
                {"name": PROVIDER, "provider_code": "FLASH"},
                {"name": "LEX TH", "provider_code": "LEX"},
            ],
        }
    )


def document(lz: LazadaShop | None, params: dict[str, str]) -> dict[str, Any]:
    assert lz is not None
    request = _req(params, "getDocumentReq")
    packages = request.get("packages") or []
    if not 1 <= len(packages) <= MAX_BATCH:
        raise _api_error("700022", "BATCH_SIZE_OUT_OF_LIMIT")
    found = [_package_of(lz, str(p.get("package_id") or "")) for p in packages]
    if any(f is None or f[1].method != "packed" for f in found):
        raise _api_error("600001", "package not found or not packed")
    order, package = found[0]  # type: ignore[misc]
    pdf = label_for("Lazada", str(order.order_id), _package_id(order), package.tracking_number)
    return {"data": {"file": base64.b64encode(pdf).decode(), "doc_type": "PDF"}}


def _validate_order(lz: LazadaShop, params: dict[str, str]) -> SeedOrder:
    order = _order(lz, params.get("order_id"))
    if order is None:
        raise _api_error("E0122", "invalid trade order")
    try:
        items = json.loads(params.get("order_item_id_list") or "[]")
    except ValueError:
        raise _api_error("E0102", "invalid order line") from None
    known = {item.line_id * 10 + unit for item in order.items for unit in range(99)}
    if not items or any(i not in known for i in items):
        raise _api_error("E0102", "invalid order line")
    if (
        order.status not in ("pending", "ready_to_ship")
        or book_of(lz).of(order).packages[0].shipped
    ):
        raise _api_error("E0102", f"The order line cannot be cancelled in status {order.status}")
    return order


def cancel_validate(lz: LazadaShop | None, params: dict[str, str]) -> dict[str, Any]:
    assert lz is not None
    _validate_order(lz, params)
    options = [{"reason_id": rid, "reason_name": name} for rid, name in CANCEL_REASONS]
    return {"data": {"tip_content": "", "tip_type": "warn", "reason_options": options}}


def cancel_create(lz: LazadaShop | None, params: dict[str, str]) -> dict[str, Any]:
    assert lz is not None
    order = _validate_order(lz, params)
    if params.get("reason_id") not in {str(rid) for rid, _ in CANCEL_REASONS}:
        raise _api_error("E0104", "reason invalid")
    lz.shop.touch(order.index, status="cancelled")
    return {"data": {"tip_content": "Cancelled", "tip_type": "warn"}}


def cancel_decide(lz: LazadaShop | None, params: dict[str, str]) -> dict[str, Any]:
    assert lz is not None
    reverse = params.get("reverse_order_id", "")
    order = _order(lz, reverse[1:]) if reverse.startswith("R") else None
    if order is None or order.status != "cancelling":
        raise _api_error("E0122", "No cancellation request is waiting for this order")
    agree = params.get("agree_cancel", "").lower() == "true"
    lz.shop.touch(order.index, status="cancelled" if agree else "pending")
    return {"data": {"tip_content": "", "tip_type": "warn"}}


def decorate_rows(lz: LazadaShop, rows: list[dict[str, Any]]) -> None:
    """Item rows as the book has them: packed and ready-to-ship items carry their package."""
    book = book_of(lz)
    for row in rows:
        order = lz.shop.get(int(row["order_id"]))
        if order is None:
            continue
        if order.status == "cancelling":
            row["reverse_order_id"] = f"R{order.order_id}"
        known = book.orders.get(order.order_id)
        if known is None or order.status == "cancelled":
            continue
        package = known.packages[0]
        if package.method == "packed":
            row["package_id"] = _package_id(order)
            row["tracking_code"] = package.tracking_number or ""
            row["shipment_provider"] = PROVIDER
            row["status"] = "ready_to_ship" if package.shipped else "packed"


def handlers(sandbox: LazadaSandbox) -> dict[str, tuple[Handler, bool]]:
    base_one = sandbox._order_items_get
    base_many = sandbox._orders_items_get

    def order_items(lz: LazadaShop | None, params: dict[str, str]) -> dict[str, Any]:
        answer = base_one(lz, params)
        assert lz is not None
        decorate_rows(lz, answer["data"])
        return answer

    def orders_items(lz: LazadaShop | None, params: dict[str, str]) -> dict[str, Any]:
        answer = base_many(lz, params)
        assert lz is not None
        for entry in answer["data"]:
            decorate_rows(lz, entry["order_items"])
        return answer

    return {
        "/order/items/get": (order_items, True),
        "/orders/items/get": (orders_items, True),
        "/order/shipment/providers/get": (shipment_providers, True),
        "/order/fulfill/pack": (pack, True),
        "/order/package/rts": (ready_to_ship, True),
        "/order/package/document/get": (document, True),
        "/order/reverse/cancel/validate": (cancel_validate, True),
        "/order/reverse/cancel/create": (cancel_create, True),
        "/order/reverse/cancel/seller/decide": (cancel_decide, True),
    }


def place_orders_endpoint(sandbox: LazadaSandbox) -> Callable[[Request], Any]:
    """POST /_sandbox/orders {shopId?, count?, sku?, quantity?}: new paid orders."""
    from app.sandbox.common import JSONResponse, read_json_or_none

    async def endpoint(request: Request) -> Response:
        body = await read_json_or_none(request)
        body = body if isinstance(body, dict) else {}
        lz = sandbox.shops.get(str(body.get("shopId"))) if body.get("shopId") else None
        if lz is None and not body.get("shopId") and sandbox.shops:
            lz = next(iter(sandbox.shops.values()))
        if lz is None:
            return JSONResponse({"error": "sandbox_error", "message": "unknown shopId"}, 404)
        orders = place_orders(
            lz.shop,
            int(body.get("count", 1)),
            sku=body.get("sku"),
            quantity=int(body.get("quantity", 1)),
            lines=int(body.get("lines", 1)),
        )
        return JSONResponse(
            {
                "shopId": lz.seller_id,
                "orders": [
                    {"orderId": str(o.order_id), "skus": [i.sku for i in o.items]} for o in orders
                ],
            }
        )

    return endpoint
