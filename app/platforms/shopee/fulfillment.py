"""Shopee v2 logistics and cancellation (reference fulfillment-and-tiktok.md §1).

Ship: `ship_order` for one order or package, `mass_ship_order` for up to 50 packages of one
logistics channel (package numbers read from `get_order_detail`'s `package_list`). Labels:
`create_shipping_document` -> `get_shipping_document_result` -> `download_shipping_document`
(binary). Tracking: `get_tracking_number`, which may be empty at first."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from app.platforms.base import MarketplaceClient
from app.platforms.errors import MarketplaceError, PermanentError
from app.platforms.fulfillment import (
    CancelReason,
    LabelFormat,
    LabelResult,
    ShippingOptions,
    ShipRequest,
    ShipResult,
    ShipTarget,
    chunks,
    is_pdf,
)
from app.platforms.shopee.mapping import PLATFORM, classify_response

SHIPPING_PARAMETER = "/api/v2/logistics/get_shipping_parameter"
SHIP_ORDER = "/api/v2/logistics/ship_order"
MASS_SHIP_ORDER = "/api/v2/logistics/mass_ship_order"
TRACKING_NUMBER = "/api/v2/logistics/get_tracking_number"
CREATE_DOCUMENT = "/api/v2/logistics/create_shipping_document"
DOCUMENT_RESULT = "/api/v2/logistics/get_shipping_document_result"
DOWNLOAD_DOCUMENT = "/api/v2/logistics/download_shipping_document"
CANCEL_ORDER = "/api/v2/order/cancel_order"
HANDLE_BUYER_CANCELLATION = "/api/v2/order/handle_buyer_cancellation"
ORDER_DETAIL = "/api/v2/order/get_order_detail"

_ADDRESS_PARTS = ("address", "district", "city", "state", "zipcode")
ALREADY_SHIPPED = "logistics.package_already_shipped"
ALREADY_SHIPPED_WORDS = ("already shipped", "has been shipped")
CANCEL_REASONS = (
    CancelReason("OUT_OF_STOCK", "Out of stock"),
    CancelReason("CUSTOMER_REQUEST", "Customer request"),
    CancelReason("UNDELIVERABLE_AREA", "Undeliverable area (TW, MY only)"),
    CancelReason("COD_NOT_SUPPORTED", "Cash on delivery not supported"),
)
# a6 is the thermal printer's size; a4 the office printer's.
DOCUMENT_TYPES: dict[str, str] = {"a6": "THERMAL_AIR_WAYBILL", "a4": "NORMAL_AIR_WAYBILL"}


def classify_document(response: httpx.Response) -> dict[str, Any]:
    """download_shipping_document answers the file itself, or Shopee's JSON error envelope."""
    if response.status_code < 400 and not response.headers.get("content-type", "").startswith(
        "application/json"
    ):
        return {"content": response.content}
    return classify_response(response)


def _method_body(request: ShipRequest, tracking_number: str | None) -> dict[str, Any]:
    """Exactly one method object, sent even when empty (`"dropoff": {}`)."""
    if request.method == "pickup":
        pickup: dict[str, Any] = {}
        if request.address_id is not None:
            pickup["address_id"] = int(request.address_id)
        if request.pickup_time_id is not None:
            pickup["pickup_time_id"] = request.pickup_time_id
        return {"pickup": pickup}
    if request.method == "dropoff":
        return {"dropoff": {}}
    return {"non_integrated": {"tracking_number": tracking_number or ""}}


def _refusal(target: ShipTarget, error: MarketplaceError, package: str | None) -> ShipResult:
    # mass_ship_order's fail_reason is text only: Shopee's words for the same refusal count.
    words = error.message.lower()
    already = error.code == ALREADY_SHIPPED or any(w in words for w in ALREADY_SHIPPED_WORDS)
    message = f"Already shipped: {error.message}" if already else error.message
    return ShipResult(
        target.external_order_id,
        ok=False,
        package_number=package,
        message=message,
        already_shipped=already,
    )


class ShopeeFulfillment(MarketplaceClient):
    """Mixed into ShopeeClient, which provides `_shop_call`."""

    mass_ship_batch_size: ClassVar[int] = 50  # package_list[1..50]
    document_batch_size: ClassVar[int] = 50  # order_list[1..50]

    if TYPE_CHECKING:

        async def _shop_call(
            self,
            method: str,
            api_path: str,
            *,
            params: Mapping[str, Any] | None = None,
            json_body: Any = None,
            classify: Callable[[httpx.Response], dict[str, Any]] = classify_response,
        ) -> dict[str, Any]: ...

    @staticmethod
    def _body(payload: Mapping[str, Any]) -> Mapping[str, Any]:
        body = payload.get("response")
        return body if isinstance(body, Mapping) else {}

    @staticmethod
    def _order_query(target: ShipTarget) -> dict[str, str]:
        query = {"order_sn": target.external_order_id}
        if target.package_number:
            query["package_number"] = target.package_number
        return query

    async def shipping_options(self, target: ShipTarget) -> ShippingOptions:
        payload = await self._shop_call("GET", SHIPPING_PARAMETER, params=self._order_query(target))
        body = self._body(payload)
        needed = body.get("info_needed") or {}
        pickup = body.get("pickup") or {}
        dropoff = body.get("dropoff") or {}
        addresses = [
            {
                "addressId": str(a.get("address_id")),
                "address": ", ".join(
                    str(a[k])
                    for k in ("address", "district", "city", "state", "zipcode")
                    if a.get(k)
                ),
                "timeSlots": [
                    {
                        "id": str(s.get("pickup_time_id")),
                        "text": s.get("time_text") or s.get("date"),
                    }
                    for s in a.get("time_slot_list") or []
                ],
            }
            for a in pickup.get("address_list") or []
        ]
        branches = [
            {"branchId": str(b.get("branch_id")), "address": b.get("address")}
            for b in dropoff.get("branch_list") or []
        ]
        methods = {"pickup": "pickup", "dropoff": "dropoff", "non_integrated": "tracking"}
        return ShippingOptions(
            methods=[methods[k] for k in ("pickup", "dropoff", "non_integrated") if k in needed],
            pickup_addresses=addresses,
            dropoff_branches=branches,
            info_needed={methods[k]: list(v or []) for k, v in needed.items() if k in methods},
        )

    async def ship(self, targets: Sequence[ShipTarget], request: ShipRequest) -> list[ShipResult]:
        if len(targets) == 1:
            return [await self._ship_one(targets[0], request)]
        return await self._mass_ship(targets, request)

    async def _ship_one(self, target: ShipTarget, request: ShipRequest) -> ShipResult:
        body: dict[str, Any] = {"order_sn": target.external_order_id}
        if target.package_number:
            body["package_number"] = target.package_number
        body |= _method_body(request, target.tracking_number)
        try:
            await self._shop_call("POST", SHIP_ORDER, json_body=body)
        except MarketplaceError as error:
            if error.retryable:
                raise
            return _refusal(target, error, target.package_number)
        return ShipResult(
            target.external_order_id,
            ok=True,
            package_number=target.package_number,
            tracking_number=target.tracking_number if request.method == "tracking" else None,
        )

    async def _packages(self, order_sns: Sequence[str]) -> dict[str, list[Mapping[str, Any]]]:
        """Each order's packages (number and logistics channel), 50 orders per call."""
        found: dict[str, list[Mapping[str, Any]]] = {}
        for batch in chunks(list(order_sns), 50):
            payload = await self._shop_call(
                "GET",
                ORDER_DETAIL,
                params={
                    "order_sn_list": ",".join(batch),
                    "response_optional_fields": "package_list",
                },
            )
            for order in self._body(payload).get("order_list") or []:
                packages = order.get("package_list") or []
                found[str(order.get("order_sn"))] = [p for p in packages if isinstance(p, Mapping)]
        return found

    async def _mass_ship(
        self, targets: Sequence[ShipTarget], request: ShipRequest
    ) -> list[ShipResult]:
        unknown = [t.external_order_id for t in targets if not t.package_number]
        packages = await self._packages(unknown) if unknown else {}
        # package_number -> (target, channel); all packages of one call share a channel.
        by_channel: dict[str, list[tuple[str, ShipTarget]]] = defaultdict(list)
        results: dict[str, list[ShipResult]] = defaultdict(list)
        for target in targets:
            if target.package_number:
                by_channel[""].append((target.package_number, target))
                continue
            listed = packages.get(target.external_order_id)
            if not listed:
                results[target.external_order_id].append(
                    ShipResult(target.external_order_id, ok=False, message="Order not found")
                )
            for package in listed or []:
                channel = str(package.get("logistics_channel_id") or "")
                by_channel[channel].append((str(package.get("package_number")), target))
        for channel, entries in by_channel.items():
            for batch in chunks(entries, self.mass_ship_batch_size):
                await self._mass_ship_batch(channel, batch, request, results)
        return [self._merge(t, results[t.external_order_id]) for t in targets]

    async def _mass_ship_batch(
        self,
        channel: str,
        batch: Sequence[tuple[str, ShipTarget]],
        request: ShipRequest,
        results: dict[str, list[ShipResult]],
    ) -> None:
        body: dict[str, Any] = {"package_list": [{"package_number": p} for p, _ in batch]}
        if channel:
            body["logistics_channel_id"] = int(channel)
        if request.method == "tracking":
            body["non_integrated"] = {
                "tracking_number": [
                    {"package_number": p, "tracking_number": t.tracking_number or ""}
                    for p, t in batch
                ]
            }
        else:
            body |= _method_body(request, None)
        try:
            payload = await self._shop_call("POST", MASS_SHIP_ORDER, json_body=body)
        except MarketplaceError as error:
            if error.retryable:
                raise
            for package, target in batch:
                results[target.external_order_id].append(_refusal(target, error, package))
            return
        answer = self._body(payload)
        failed = {
            str(f.get("package_number")): str(f.get("fail_reason") or "refused")
            for f in answer.get("fail_list") or []
        }
        for package, target in batch:
            if package in failed:
                reason = failed[package]
                refusal = PermanentError(reason, platform=PLATFORM, code=reason)
                results[target.external_order_id].append(_refusal(target, refusal, package))
            else:
                results[target.external_order_id].append(
                    ShipResult(
                        target.external_order_id,
                        ok=True,
                        package_number=package,
                        tracking_number=target.tracking_number
                        if request.method == "tracking"
                        else None,
                    )
                )

    @staticmethod
    def _merge(target: ShipTarget, parts: list[ShipResult]) -> ShipResult:
        """An order shipped in several packages is shipped when every package is."""
        if len(parts) == 1:
            return parts[0]
        failed = [p for p in parts if not p.ok]
        packages = ",".join(p.package_number or "" for p in parts)
        if failed:
            return ShipResult(
                target.external_order_id,
                ok=False,
                package_number=packages,
                message="; ".join(p.message or "" for p in failed),
                already_shipped=all(p.already_shipped for p in failed),
            )
        return ShipResult(
            target.external_order_id,
            ok=True,
            package_number=packages,
            tracking_number=parts[0].tracking_number,
        )

    async def tracking_number(self, target: ShipTarget) -> str | None:
        payload = await self._shop_call("GET", TRACKING_NUMBER, params=self._order_query(target))
        number = self._body(payload).get("tracking_number")
        return str(number) if number else None

    async def labels(self, targets: Sequence[ShipTarget], fmt: LabelFormat) -> list[LabelResult]:
        doc_type = DOCUMENT_TYPES[fmt]
        results: list[LabelResult] = []
        for batch in chunks(targets, self.document_batch_size):
            results += await self._label_batch(batch, doc_type)
        return results

    @staticmethod
    def _document_order(target: ShipTarget) -> dict[str, Any]:
        entry: dict[str, Any] = {"order_sn": target.external_order_id}
        if target.package_number:
            entry["package_number"] = target.package_number
        return entry

    async def _label_batch(self, batch: Sequence[ShipTarget], doc_type: str) -> list[LabelResult]:
        orders = [self._document_order(t) for t in batch]
        created = await self._shop_call(
            "POST",
            CREATE_DOCUMENT,
            json_body={
                "order_list": [
                    {
                        **o,
                        "shipping_document_type": doc_type,
                        **({"tracking_number": t.tracking_number} if t.tracking_number else {}),
                    }
                    for o, t in zip(orders, batch, strict=True)
                ]
            },
        )
        problems: dict[str, str] = {}
        for row in self._body(created).get("result_list") or []:
            if row.get("fail_error"):
                problems[str(row.get("order_sn"))] = str(
                    row.get("fail_message") or row["fail_error"]
                )
        status_payload = await self._shop_call(
            "POST",
            DOCUMENT_RESULT,
            json_body={"order_list": orders, "shipping_document_type": doc_type},
        )
        status: dict[str, str] = {}
        for row in self._body(status_payload).get("result_list") or []:
            sn = str(row.get("order_sn"))
            status[sn] = str(row.get("status") or "")
            if row.get("fail_error") and sn not in problems:
                problems[sn] = str(row.get("fail_message") or row["fail_error"])
        results: list[LabelResult] = []
        for order, target in zip(orders, batch, strict=True):
            sn = target.external_order_id
            if status.get(sn) != "READY":
                message = problems.get(sn) or f"Label {status.get(sn, 'PROCESSING').lower()}"
                results.append(LabelResult(sn, ready=False, message=message))
                continue
            answer = await self._shop_call(
                "POST",
                DOWNLOAD_DOCUMENT,
                json_body={"shipping_document_type": doc_type, "order_list": [order]},
                classify=classify_document,
            )
            content = answer.get("content")
            if not isinstance(content, bytes) or not is_pdf(content):
                results.append(LabelResult(sn, ready=False, message="Shopee sent no PDF"))
            else:
                results.append(LabelResult(sn, ready=True, pdf=content))
        return results

    async def cancel_reasons(self, target: ShipTarget) -> list[CancelReason]:
        return list(CANCEL_REASONS)

    async def cancel_order(self, target: ShipTarget, reason: str) -> None:
        body: dict[str, Any] = {"order_sn": target.external_order_id, "cancel_reason": reason}
        if reason == "OUT_OF_STOCK":
            # Shopee wants the items that are out of stock: all of the order's.
            payload = await self._shop_call(
                "GET",
                ORDER_DETAIL,
                params={
                    "order_sn_list": target.external_order_id,
                    "response_optional_fields": "item_list",
                },
            )
            orders = self._body(payload).get("order_list") or []
            items = orders[0].get("item_list") or [] if orders else []
            body["item_list"] = [
                {"item_id": i.get("item_id"), "model_id": i.get("model_id")} for i in items
            ]
        await self._shop_call("POST", CANCEL_ORDER, json_body=body)

    async def answer_cancellation(self, target: ShipTarget, accept: bool) -> None:
        await self._shop_call(
            "POST",
            HANDLE_BUYER_CANCELLATION,
            json_body={
                "order_sn": target.external_order_id,
                "operation": "ACCEPT" if accept else "REJECT",
            },
        )
