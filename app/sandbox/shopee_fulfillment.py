"""Shopee logistics and cancellation in the sandbox, with Shopee's rules and error codes
(reference fulfillment-and-tiktok.md §1): shipping parameters, ship_order and mass_ship_order
(split orders need `package_number`), tracking numbers empty at first, shipping documents
(create -> result -> download, a PDF), cancel_order and handle_buyer_cancellation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app.sandbox.fulfillment import (
    LOGISTICS_CHANNEL_ID,
    Package,
    book_of,
    label_for,
    order_id_of_package,
    place_orders,
)
from app.sandbox.seed import SeedOrder
from app.sandbox.shopee import (
    Call,
    Level,
    ShopeeApiError,
    ShopeeSandbox,
    ShopeeShop,
    find_order,
    order_sn,
    raw_status,
)

ADDRESS_ID = 200
PICKUP_TIME_IDS = ("1639472400", "1639558800")
SHIPPABLE = frozenset({"pending", "failed"})  # READY_TO_SHIP, RETRY_SHIP
CANCELLABLE = frozenset({"unpaid", "pending", "failed"})
DOCUMENT_TYPES = frozenset(
    {
        "NORMAL_AIR_WAYBILL",
        "THERMAL_AIR_WAYBILL",
        "NORMAL_JOB_AIR_WAYBILL",
        "THERMAL_JOB_AIR_WAYBILL",
        "THERMAL_UNPACKAGED_LABEL",
    }
)
MAX_TRACKING_LENGTH = 64


def _error(code: str, message: str) -> ShopeeApiError:
    return ShopeeApiError(code, message)


def _order(shop: ShopeeShop, sn: object) -> SeedOrder:
    order = find_order(shop, str(sn or ""))
    if order is None:
        raise _error("logistics.order_not_found", "order_sn is not found.")
    return order


def _changed(shop: ShopeeShop, order: SeedOrder, status: str) -> SeedOrder:
    changed = shop.seeded.touch(order.index, status=status)
    shop.unpushed.append(order.order_id)
    return changed


def _package(shop: ShopeeShop, order: SeedOrder, number: object) -> Package:
    """The package a call names: required for split orders, optional otherwise."""
    book = book_of(shop)
    if number in (None, ""):
        if book.is_split(order):
            raise _error(
                "logistics.ship_order_need_pacakge_number",
                "Please request with package_number for this split order",
            )
        return book.of(order).packages[0]
    package = book.package(order, str(number))
    if package is None:
        raise _error("logistics.package_number_not_exist", "package_number is not exist.")
    return package


def package_list(shop: ShopeeShop, order: SeedOrder) -> list[dict[str, Any]]:
    """get_order_detail's `package_list` (response_optional_fields=package_list)."""
    return [
        {
            "package_number": p.number,
            "logistics_status": "LOGISTICS_REQUEST_CREATED" if p.shipped else "LOGISTICS_READY",
            "logistics_channel_id": LOGISTICS_CHANNEL_ID,
            "shipping_carrier": "Flash Express",
            "item_list": [{"order_item_id": line, "model_quantity": 1} for line in p.line_ids],
        }
        for p in book_of(shop).of(order).packages
    ]


async def get_shipping_parameter(state: ShopeeSandbox, call: Call) -> dict[str, Any]:
    shop = call.the_shop
    order = _order(shop, call.query.get("order_sn"))
    if order.status == "cancelled":
        raise _error("error_status", "The order has been cancelled.")
    if book_of(shop).is_split(order) and not call.query.get("package_number"):
        raise _error(
            "logistics.package_number_not_exist",
            "Please request with package_number for this split order",
        )
    package = _package(shop, order, call.query.get("package_number"))
    if order.status not in SHIPPABLE or package.shipped:
        raise _error(
            "error_param",
            "Shipping parameters can only be obtained when package is ready to be shipped",
        )
    return {
        "response": {
            "info_needed": {
                "pickup": ["address_id", "pickup_time_id"],
                "dropoff": [],
                "non_integrated": ["tracking_no"],
            },
            "pickup": {
                "address_list": [
                    {
                        "address_id": ADDRESS_ID,
                        "region": "TH",
                        "state": "กรุงเทพมหานคร",
                        "city": "เขตบางรัก",
                        "district": "",
                        "town": "",
                        "address": "99 ถนนสีลม",
                        "zipcode": "10500",
                        "address_flag": ["default_address", "pickup_address"],
                        "time_slot_list": [
                            {
                                "date": int(slot),
                                "time_text": f"slot {n + 1}",
                                "pickup_time_id": slot,
                            }
                            for n, slot in enumerate(PICKUP_TIME_IDS)
                        ],
                    }
                ]
            },
            "dropoff": {"branch_list": [], "slug_list": []},
        }
    }


def _method(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    given = [k for k in ("pickup", "dropoff", "non_integrated") if k in body]
    if len(given) != 1 or not isinstance(body[given[0]], dict):
        raise _error(
            "logistics.error_param", "Please send exactly one of pickup, dropoff, non_integrated."
        )
    return given[0], body[given[0]]


def _check_method(method: str, details: dict[str, Any], tracking: object) -> str | None:
    """The tracking number the seller gave (non-integrated), after Shopee's checks."""
    if method == "pickup":
        if details.get("address_id") != ADDRESS_ID or not details.get("pickup_time_id"):
            raise _error(
                "logistics.ship_order_need_address_pickup_time",
                "Please fill in address_id and pickup_time_id.",
            )
        if str(details["pickup_time_id"]) not in PICKUP_TIME_IDS:
            raise _error("logistics.ship_order_pickup_time_invalid", "pickup_time_id is invalid.")
        return None
    if method == "non_integrated":
        number = str(tracking or "")
        if not number:
            raise _error(
                "logistics.ship_order_need_tracking_number", "Please fill in tracking_number."
            )
        if len(number) > MAX_TRACKING_LENGTH:
            raise _error(
                "logistics.ship_order_long_tracking_number", "The tracking number is too long."
            )
        return number
    return None


def _ship_package(
    shop: ShopeeShop, order: SeedOrder, package: Package, method: str, tracking: str | None
) -> None:
    if package.shipped:
        raise _error("logistics.package_already_shipped", "Package has been shipped.")
    if order.status not in SHIPPABLE:
        raise _error("logistics.error_param", "The order status is not ready to ship.")
    book = book_of(shop)
    book.ship(order, package, method, tracking)
    if book.all_shipped(order):
        _changed(shop, order, "ready_to_ship")  # PROCESSED


async def ship_order(state: ShopeeSandbox, call: Call) -> dict[str, Any]:
    shop, body = call.the_shop, call.body
    order = _order(shop, body.get("order_sn"))
    number = body.get("package_number")
    if number and not book_of(shop).is_split(order) and number != f"OFG{order.order_id}":
        raise _error(
            "logistics.ship_order_not_need_pacakge_number",
            "This order is not split, please request without package_number",
        )
    package = _package(shop, order, number)
    method, details = _method(body)
    tracking = _check_method(method, details, details.get("tracking_number"))
    _ship_package(shop, order, package, method, tracking)
    return {}


async def mass_ship_order(state: ShopeeSandbox, call: Call) -> dict[str, Any]:
    shop, body = call.the_shop, call.body
    packages = body.get("package_list")
    if not isinstance(packages, list) or not 1 <= len(packages) <= 50:
        raise _error("logistics.error_param", "package_list must hold 1 to 50 packages.")
    channel = body.get("logistics_channel_id")
    if channel is not None and channel != LOGISTICS_CHANNEL_ID:
        raise _error("logistics.error_param", "logistics_channel_id is invalid.")
    method, details = _method(body)
    trackings: dict[str, str] = {}
    if method == "non_integrated":
        for entry in details.get("tracking_number") or []:
            trackings[str(entry.get("package_number"))] = str(entry.get("tracking_number") or "")
    success: list[dict[str, Any]] = []
    fail: list[dict[str, Any]] = []
    for entry in packages:
        number = str(entry.get("package_number") if isinstance(entry, dict) else "")
        try:
            order_id = order_id_of_package(number)
            order = shop.seeded.get(order_id) if order_id is not None else None
            if order is None:
                raise _error("logistics.package_number_not_exist", "package_number is not exist.")
            package = _package(shop, order, number)
            tracking = _check_method(method, details, trackings.get(number))
            _ship_package(shop, order, package, method, tracking)
        except ShopeeApiError as refusal:
            fail.append({"package_number": number, "fail_reason": refusal.message})
            continue
        success.append({"package_number": number})
    return {"response": {"success_list": success, "fail_list": fail}}


async def get_tracking_number(state: ShopeeSandbox, call: Call) -> dict[str, Any]:
    shop = call.the_shop
    order = _order(shop, call.query.get("order_sn"))
    package = _package(shop, order, call.query.get("package_number"))
    number = book_of(shop).read_tracking(package)
    return {
        "response": {
            "tracking_number": number or "",
            "plp_number": "",
            "first_mile_tracking_number": "",
            "last_mile_tracking_number": "",
            "hint": "" if number else "The tracking number is being generated.",
            "pickup_code": "",
        }
    }


def _document_orders(body: dict[str, Any]) -> list[dict[str, Any]]:
    orders = body.get("order_list")
    if not isinstance(orders, list) or not 1 <= len(orders) <= 50:
        raise _error("logistics.error_param", "order_list must hold 1 to 50 orders.")
    return [o for o in orders if isinstance(o, dict)]


def _document_target(
    shop: ShopeeShop, entry: dict[str, Any]
) -> tuple[SeedOrder | None, Package | None, str | None]:
    """(order, package, refusal) of one order_list entry."""
    order = find_order(shop, str(entry.get("order_sn") or ""))
    if order is None:
        return None, None, "order_sn is not found."
    try:
        package = _package(shop, order, entry.get("package_number"))
    except ShopeeApiError as refusal:
        return order, None, refusal.message
    if not package.shipped:
        return order, package, "The order status is not PROCESSED; arrange shipment first."
    return order, package, None


async def create_shipping_document(state: ShopeeSandbox, call: Call) -> dict[str, Any]:
    shop = call.the_shop
    results = []
    for entry in _document_orders(call.body):
        _, package, refusal = _document_target(shop, entry)
        doc_type = entry.get("shipping_document_type", "NORMAL_AIR_WAYBILL")
        if refusal is None and doc_type not in DOCUMENT_TYPES:
            refusal = "shipping_document_type is invalid."
        row: dict[str, Any] = {
            "order_sn": entry.get("order_sn"),
            "package_number": entry.get("package_number", ""),
        }
        if refusal is not None or package is None:
            row |= {"fail_error": "logistics.invalid_error", "fail_message": refusal}
        elif package.label_polls < 0:
            package.label_polls = book_of(shop).label_processing_polls
        results.append(row)
    return {"response": {"result_list": results}}


async def get_shipping_document_result(state: ShopeeSandbox, call: Call) -> dict[str, Any]:
    shop = call.the_shop
    results = []
    for entry in _document_orders(call.body):
        _, package, refusal = _document_target(shop, entry)
        row: dict[str, Any] = {
            "order_sn": entry.get("order_sn"),
            "package_number": entry.get("package_number", ""),
        }
        if refusal is not None or package is None:
            row |= {"status": "FAILED", "fail_error": "logistics.invalid_error"}
            row["fail_message"] = refusal
        elif package.label_polls < 0:
            row |= {
                "status": "FAILED",
                "fail_error": "logistics.shipping_document_should_print_first",
                "fail_message": "Please create the shipping document first.",
            }
        elif package.label_polls > 0:
            package.label_polls -= 1
            row["status"] = "PROCESSING"
        else:
            row["status"] = "READY"
        results.append(row)
    return {"response": {"result_list": results}}


async def download_shipping_document(state: ShopeeSandbox, call: Call) -> Response:
    shop = call.the_shop
    entries = _document_orders(call.body)
    pages: list[bytes] = []
    for entry in entries:
        order, package, refusal = _document_target(shop, entry)
        if refusal is not None or package is None or order is None or package.label_polls != 0:
            raise _error(
                "logistics.shipping_document_should_print_first",
                refusal or "The shipping document is not ready.",
            )
        pages.append(label_for("Shopee", order_sn(order), package.number, package.tracking_number))
    # One order per download is what the client asks; more would be one merged file.
    return Response(pages[0], media_type="application/pdf")


async def cancel_order(state: ShopeeSandbox, call: Call) -> dict[str, Any]:
    shop, body = call.the_shop, call.body
    order = _order(shop, body.get("order_sn"))
    reason = body.get("cancel_reason")
    if reason not in (
        "OUT_OF_STOCK",
        "CUSTOMER_REQUEST",
        "UNDELIVERABLE_AREA",
        "COD_NOT_SUPPORTED",
    ):
        raise _error("order.error_param", "cancel_reason is invalid.")
    if reason == "OUT_OF_STOCK" and not body.get("item_list"):
        raise _error("order.error_param", "item_list is required for OUT_OF_STOCK.")
    if order.status not in CANCELLABLE or any(p.shipped for p in book_of(shop).of(order).packages):
        raise _error("order.error_limit", "Can not cancel this order")
    changed = _changed(shop, order, "cancelled")
    return {"response": {"update_time": int(changed.updated_at.timestamp())}}


async def handle_buyer_cancellation(state: ShopeeSandbox, call: Call) -> dict[str, Any]:
    shop, body = call.the_shop, call.body
    order = _order(shop, body.get("order_sn"))
    operation = body.get("operation")
    if operation not in ("ACCEPT", "REJECT"):
        raise _error("order.error_param", "operation must be ACCEPT or REJECT.")
    if raw_status(order, True) != "IN_CANCEL":
        raise _error("order.order_status_invalid", "The order status should be IN_CANCEL")
    changed = _changed(shop, order, "cancelled" if operation == "ACCEPT" else "pending")
    return {"response": {"update_time": int(changed.updated_at.timestamp())}}


Handler = Callable[[ShopeeSandbox, Call], Awaitable[dict[str, Any] | Response]]

API: tuple[tuple[str, str, Level, Handler], ...] = (
    ("GET", "/api/v2/logistics/get_shipping_parameter", "shop", get_shipping_parameter),
    ("POST", "/api/v2/logistics/ship_order", "shop", ship_order),
    ("POST", "/api/v2/logistics/mass_ship_order", "shop", mass_ship_order),
    ("GET", "/api/v2/logistics/get_tracking_number", "shop", get_tracking_number),
    ("POST", "/api/v2/logistics/create_shipping_document", "shop", create_shipping_document),
    (
        "POST",
        "/api/v2/logistics/get_shipping_document_result",
        "shop",
        get_shipping_document_result,
    ),
    ("POST", "/api/v2/logistics/download_shipping_document", "shop", download_shipping_document),
    ("POST", "/api/v2/order/cancel_order", "shop", cancel_order),
    ("POST", "/api/v2/order/handle_buyer_cancellation", "shop", handle_buyer_cancellation),
)


# --- control -----------------------------------------------------------------------------------


async def control_place_orders(state: ShopeeSandbox, body: dict[str, Any]) -> dict[str, Any]:
    """POST /_sandbox/orders {shopId?, count?, sku?, quantity?, lines?, split?}: new paid
    orders on the shop (the first one when no shopId), its stock lowered as a sale does."""
    shop = _control_shop(state, body)
    orders = place_orders(
        shop.seeded,
        int(body.get("count", 1)),
        sku=body.get("sku"),
        quantity=int(body.get("quantity", 1)),
        lines=int(body.get("lines", 1)),
    )
    book = book_of(shop)
    for order in orders:
        if int(body.get("split", 0)) > 1:
            book.split(order, int(body["split"]))
        shop.unpushed.append(order.order_id)
    return {
        "shopId": str(shop.shop_id),
        "orders": [
            {
                "orderId": shop.order_sn(o.index),
                "packages": [p.number for p in book.of(o).packages],
                "skus": [i.sku for i in o.items],
            }
            for o in orders
        ],
    }


async def control_fulfillment(state: ShopeeSandbox, body: dict[str, Any]) -> dict[str, Any]:
    """POST /_sandbox/fulfillment {shopId?, trackingHiddenReads?, labelProcessingPolls?}."""
    book = book_of(_control_shop(state, body))
    if "trackingHiddenReads" in body:
        book.tracking_hidden_reads = int(body["trackingHiddenReads"])
    if "labelProcessingPolls" in body:
        book.label_processing_polls = int(body["labelProcessingPolls"])
    return {
        "trackingHiddenReads": book.tracking_hidden_reads,
        "labelProcessingPolls": book.label_processing_polls,
    }


def _control_shop(state: ShopeeSandbox, body: dict[str, Any]) -> ShopeeShop:
    if body.get("shopId"):
        shop = state.shops.get(int(body["shopId"]))
        if shop is None:
            raise KeyError("unknown shopId")
        return shop
    if not state.shops:
        raise KeyError("no shop")
    return next(iter(state.shops.values()))


ControlFn = Callable[[ShopeeSandbox, dict[str, Any]], Awaitable[dict[str, Any]]]
CONTROL: tuple[tuple[str, ControlFn], ...] = (
    ("/_sandbox/orders", control_place_orders),
    ("/_sandbox/fulfillment", control_fulfillment),
)


def control_endpoint(
    state: ShopeeSandbox, fn: ControlFn
) -> Callable[[Request], Awaitable[Response]]:
    from app.sandbox.common import JSONResponse, read_json_or_none

    async def endpoint(request: Request) -> Response:
        body = await read_json_or_none(request)
        if not isinstance(body, dict):
            body = {}
        try:
            return JSONResponse(await fn(state, body), status_code=200)
        except KeyError as exc:
            return JSONResponse({"error": "sandbox_error", "message": str(exc)}, status_code=404)
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": "sandbox_error", "message": str(exc)}, status_code=400)

    return endpoint
