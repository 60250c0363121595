"""TikTok Shop fulfillment, SEA flow (reference §4.7, §4.8): a package exists once the buyer
pays (`packages[].id` of the order); `POST /fulfillment/{v}/packages/{id}/ship` with a handover
method (PICKUP with a slot, DROP_OFF) or `self_shipment` (tracking number and provider);
shipping documents as labels (`doc_url`, then the PDF); seller cancellation through
`/return_refund/{v}/cancellations` with TikTok's Thai reason codes; buyer requests approved or
rejected by their cancel id."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

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
    is_pdf,
)
from app.platforms.tiktok.mapping import PLATFORM, data_of

Row = dict[str, Any]
DEFAULT_SHIP_BATCH = 50
ALREADY_SHIPPED = frozenset({"21011040", "21008099", "11006021"})
LABEL_NOT_READY = frozenset({"21023035", "11034037"})
SHIPPED_STATUSES = frozenset({"AWAITING_COLLECTION", "IN_TRANSIT", "DELIVERED", "COMPLETED"})
# Thai seller reasons by order status (reference §4.8).
CANCEL_REASONS: dict[str, tuple[tuple[str, str], ...]] = {
    "UNPAID": (
        ("seller_cancel_unpaid_reason_out_of_stock", "Out of stock"),
        ("seller_cancel_unpaid_reason_wrong_price", "Wrong price"),
        (
            "seller_cancel_unpaid_reason_buyer_hasnt_paid_within_time_allowed",
            "Buyer has not paid in time",
        ),
    ),
    "PAID": (
        ("seller_cancel_reason_out_of_stock", "Out of stock"),
        ("seller_cancel_reason_wrong_price", "Wrong price"),
        ("seller_cancel_paid_reason_address_not_deliver", "Address not deliverable"),
    ),
}
REJECT_REASON = "order_manage_list_action_respond_popup_reject_reason_invalid_cancellation_reason"


class TikTokFulfillment(MarketplaceClient):
    """Mixed into TikTokClient, which provides `_call`, `version` and `_details`."""

    label_document_type: ClassVar[str] = "SHIPPING_LABEL"

    if TYPE_CHECKING:

        async def _call(
            self,
            method: str,
            path: str,
            *,
            params: Mapping[str, str] | None = None,
            body: Any = None,
            shop: bool = True,
        ) -> dict[str, Any]: ...

        def version(self, name: str) -> str: ...

        async def _details(self, ids: Sequence[str]) -> list[Row]: ...

    def _fpath(self, rest: str) -> str:
        return f"/fulfillment/{self.version('fulfillment')}{rest}"

    async def _order(self, order_id: str) -> Row:
        rows = await self._details([order_id])
        if not rows:
            raise PermanentError(
                "The order does not belong to the current seller",
                platform=PLATFORM,
                code="21008111",
            )
        return rows[0]

    @staticmethod
    def _package_id(order: Mapping[str, Any], target: ShipTarget) -> str | None:
        if target.package_number:
            return target.package_number
        packages = order.get("packages")
        for package in packages if isinstance(packages, list) else []:
            if isinstance(package, Mapping) and package.get("id"):
                return str(package["id"])
        return None

    async def shipping_options(self, target: ShipTarget) -> ShippingOptions:
        order = await self._order(target.external_order_id)
        package_id = self._package_id(order, target)
        if package_id is None:
            raise PermanentError("The order has no package yet", platform=PLATFORM)
        payload = await self._call(
            "GET", self._fpath(f"/packages/{package_id}/handover_time_slots")
        )
        data = data_of(payload)
        methods = []
        if data.get("can_pickup"):
            methods.append("pickup")
        if data.get("can_drop_off"):
            methods.append("dropoff")
        if str(order.get("shipping_type") or "TIKTOK") == "SELLER":
            methods = ["tracking"]
        slots = [
            {
                "pickupTimeId": f"{s.get('start_time')}-{s.get('end_time')}",
                "startTime": s.get("start_time"),
                "endTime": s.get("end_time"),
            }
            for s in data.get("pickup_slots") or []
            if isinstance(s, Mapping) and s.get("avaliable", s.get("available", True))
        ]
        return ShippingOptions(
            methods=methods,
            pickup_addresses=[{"addressId": "default", "pickupTimes": slots}] if slots else [],
            packages=[{"packageId": package_id}],
            info_needed={"pickup": ["pickupTimeId"], "dropoff": [], "tracking": ["trackingNumber"]},
        )

    def _ship_body(self, target: ShipTarget, request: ShipRequest) -> dict[str, Any]:
        if request.method == "tracking":
            return {
                "self_shipment": {
                    "tracking_number": target.tracking_number or "",
                    "shipping_provider_id": target.carrier or "",
                }
            }
        body: dict[str, Any] = {
            "handover_method": "PICKUP" if request.method == "pickup" else "DROP_OFF"
        }
        if request.method == "pickup" and request.pickup_time_id and "-" in request.pickup_time_id:
            start, end = request.pickup_time_id.split("-", 1)
            body["pickup_slot"] = {"start_time": int(start), "end_time": int(end)}
        return body

    async def ship(self, targets: Sequence[ShipTarget], request: ShipRequest) -> list[ShipResult]:
        """Batch Ship Packages, `ship_batch_size` packages per call (TIKTOK_SHIP_BATCH_SIZE:
        the limit is unconfirmed); a package TikTok refuses comes back in `data.errors[]`."""
        ids = [t.external_order_id for t in targets]
        orders = {str(r.get("id")): r for r in await self._details(ids)}
        results: list[ShipResult] = []
        ready: list[tuple[ShipTarget, str]] = []
        for target in targets:
            order_id = target.external_order_id
            order = orders.get(order_id)
            if order is None:
                results.append(ShipResult(order_id, ok=False, message="Order not found"))
                continue
            if str(order.get("status")) in SHIPPED_STATUSES:
                results.append(
                    ShipResult(order_id, ok=False, message="Already shipped", already_shipped=True)
                )
                continue
            package_id = self._package_id(order, target)
            if package_id is None:
                results.append(ShipResult(order_id, ok=False, message="No package to ship"))
                continue
            ready.append((target, package_id))
        size = max(1, int(self.config.options.get("ship_batch_size") or DEFAULT_SHIP_BATCH))
        for start in range(0, len(ready), size):
            results += await self._ship_batch(ready[start : start + size], request)
        return results

    async def _ship_batch(
        self, batch: Sequence[tuple[ShipTarget, str]], request: ShipRequest
    ) -> list[ShipResult]:
        packages = [{"id": pid, **self._ship_body(target, request)} for target, pid in batch]
        refused: dict[str, tuple[str, str]] = {}
        try:
            payload = await self._call(
                "POST", self._fpath("/packages/ship"), body={"packages": packages}
            )
        except MarketplaceError as exc:
            if exc.retryable:
                raise
            refused = {pid: (exc.code or "", exc.message) for _, pid in batch}
        else:
            errors = data_of(payload).get("errors")
            for error in errors if isinstance(errors, list) else []:
                detail = error.get("detail") if isinstance(error, Mapping) else None
                if isinstance(detail, Mapping) and detail.get("package_id"):
                    refused[str(detail["package_id"])] = (
                        str(error.get("code") or ""),
                        str(error.get("message") or "Refused by TikTok Shop"),
                    )
        results = []
        for target, package_id in batch:
            if package_id in refused:
                code, message = refused[package_id]
                results.append(
                    ShipResult(
                        target.external_order_id,
                        ok=False,
                        message=message,
                        package_id=package_id,
                        already_shipped=code in ALREADY_SHIPPED,
                    )
                )
                continue
            results.append(
                ShipResult(
                    target.external_order_id,
                    ok=True,
                    package_id=package_id,
                    package_number=package_id,
                    tracking_number=target.tracking_number,
                    carrier=target.carrier,
                )
            )
        return results

    async def tracking_number(self, target: ShipTarget) -> str | None:
        order = await self._order(target.external_order_id)
        number = order.get("tracking_number")
        return str(number) if number else None

    async def labels(self, targets: Sequence[ShipTarget], fmt: LabelFormat) -> list[LabelResult]:
        results = []
        orders = {
            str(r.get("id")): r for r in await self._details([t.external_order_id for t in targets])
        }
        for target in targets:
            order_id = target.external_order_id
            order = orders.get(order_id) or {}
            package_id = self._package_id(order, target)
            if package_id is None:
                results.append(LabelResult(order_id, ready=False, message="No package yet"))
                continue
            try:
                payload = await self._call(
                    "GET",
                    self._fpath(f"/packages/{package_id}/shipping_documents"),
                    params={
                        "document_type": self.label_document_type,
                        # A6 is TikTok's default; A5 is the larger size it offers.
                        "document_size": "A6" if fmt == "a6" else "A5",
                        "document_format": "PDF",
                    },
                )
            except MarketplaceError as exc:
                if exc.code in LABEL_NOT_READY or exc.retryable:
                    results.append(LabelResult(order_id, ready=False, message=exc.message))
                    continue
                raise
            url = data_of(payload).get("doc_url")
            if not url:
                results.append(LabelResult(order_id, ready=False, message="No document yet"))
                continue
            response = await self.transport.client.get(str(url))
            if response.status_code != 200 or not is_pdf(response.content):
                results.append(LabelResult(order_id, ready=False, message="Label not readable"))
                continue
            results.append(LabelResult(order_id, ready=True, pdf=response.content))
        return results

    async def cancel_reasons(self, target: ShipTarget) -> list[CancelReason]:
        order = await self._order(target.external_order_id)
        key = "UNPAID" if order.get("status") == "UNPAID" else "PAID"
        return [CancelReason(code, name) for code, name in CANCEL_REASONS[key]]

    def _cpath(self, rest: str = "") -> str:
        return f"/return_refund/{self.version('cancellations')}/cancellations{rest}"

    async def cancel_order(self, target: ShipTarget, reason: str) -> None:
        await self._call(
            "POST",
            self._cpath(),
            body={"order_id": target.external_order_id, "cancel_reason": reason},
        )

    async def answer_cancellation(self, target: ShipTarget, accept: bool) -> None:
        payload = await self._call(
            "POST",
            self._cpath("/search"),
            params={"page_size": "50"},
            body={"order_ids": [target.external_order_id]},
        )
        raw = data_of(payload).get("cancellations")
        pending = [
            c
            for c in (raw if isinstance(raw, list) else [])
            if isinstance(c, Mapping)
            and c.get("cancel_status", c.get("status")) == "CANCELLATION_REQUEST_PENDING"
        ]
        if not pending:
            raise PermanentError("No pending cancellation request", platform=PLATFORM)
        cancel_id = str(pending[0].get("cancel_id"))
        if accept:
            await self._call("POST", self._cpath(f"/{cancel_id}/approve"), body={})
        else:
            await self._call(
                "POST", self._cpath(f"/{cancel_id}/reject"), body={"reject_reason": REJECT_REASON}
            )
