"""Meta Commerce shipments and cancellations (reference fulfillment-and-tiktok.md §3).

`POST /{order-id}/shipments` with `tracking_info {tracking_number, carrier}` and an
`idempotency_key` (items omitted: every unfulfilled quantity ships); one tracking number per
shipment. `POST /{order-id}/cancellations` with `cancel_reason {reason_code}`. Meta prints no
labels and has no buyer cancellation request to answer."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from app.platforms.base import MarketplaceClient
from app.platforms.errors import MarketplaceError
from app.platforms.fulfillment import (
    CancelReason,
    ShippingOptions,
    ShipRequest,
    ShipResult,
    ShipTarget,
)

# Carrier codes from Meta's list that Thai sellers use; anything else ships as OTHER.
CARRIERS = (
    ("KERRY_EXPRESS_THAILAND", "Kerry Express"),
    ("NINJA_VAN_THAILAND", "Ninja Van"),
    ("THAILAND_THAI_POST", "Thailand Post"),
    ("J_T_EXPRESS", "J&T Express"),
    ("BEST_EXPRESS", "Best Express"),
    ("DHL_ECOMMERCE_ASIA", "DHL eCommerce"),
    ("OTHER", "Other (e.g. Flash Express)"),
)
CANCEL_REASONS = (
    CancelReason("CUSTOMER_REQUESTED", "Customer requested"),
    CancelReason("OUT_OF_STOCK", "Out of stock"),
    CancelReason("INVALID_ADDRESS", "Invalid address"),
    CancelReason("SUSPICIOUS_ORDER", "Suspicious order"),
    CancelReason("CANCEL_REASON_OTHER", "Other"),
)
_CARRIER_CODES = frozenset(code for code, _ in CARRIERS)


def carrier_code(carrier: str | None) -> str:
    code = (carrier or "").strip().upper()
    return code if code in _CARRIER_CODES else "OTHER"


class FacebookFulfillment(MarketplaceClient):
    """Mixed into FacebookClient, which provides `_call`."""

    if TYPE_CHECKING:

        async def _call(
            self,
            method: str,
            path: str,
            *,
            params: Mapping[str, Any] | None = None,
            data: Mapping[str, Any] | None = None,
        ) -> dict[str, Any]: ...

    async def shipping_options(self, target: ShipTarget) -> ShippingOptions:
        return ShippingOptions(
            methods=["tracking"],
            carriers=[{"code": code, "name": name} for code, name in CARRIERS],
            info_needed={"tracking": ["trackingNumber", "carrier"]},
        )

    async def ship(self, targets: Sequence[ShipTarget], request: ShipRequest) -> list[ShipResult]:
        return [await self._ship_one(target) for target in targets]

    async def _ship_one(self, target: ShipTarget) -> ShipResult:
        carrier = carrier_code(target.carrier)
        data = {
            "idempotency_key": target.idempotency_key or str(uuid.uuid4()),
            "tracking_info": json.dumps(
                {"tracking_number": target.tracking_number or "", "carrier": carrier}
            ),
        }
        try:
            await self._call("POST", f"{target.external_order_id}/shipments", data=data)
        except MarketplaceError as error:
            if error.retryable:
                raise
            already = "shipped" in error.message.lower()
            return ShipResult(
                target.external_order_id,
                ok=False,
                message=error.message,
                already_shipped=already,
            )
        return ShipResult(
            target.external_order_id,
            ok=True,
            tracking_number=target.tracking_number,
            carrier=carrier,
        )

    async def cancel_reasons(self, target: ShipTarget) -> list[CancelReason]:
        return list(CANCEL_REASONS)

    async def cancel_order(self, target: ShipTarget, reason: str) -> None:
        await self._call(
            "POST",
            f"{target.external_order_id}/cancellations",
            data={
                "cancel_reason": json.dumps({"reason_code": reason}),
                "restock_items": "true",
                "idempotency_key": target.idempotency_key or str(uuid.uuid4()),
            },
        )
