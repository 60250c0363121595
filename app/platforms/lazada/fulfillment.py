"""Lazada fulfillment (reference fulfillment-and-tiktok.md §2): `/order/fulfill/pack` then
`/order/package/rts`, 20 orders or packages per call, every item's `item_err_code` checked
(`success: true` can hide a failed item); airway bills from `/order/package/document/get`;
seller cancellation through the reverse-order validate/create pair; buyer requests decided
with `/order/reverse/cancel/seller/decide`. The `*Req` parameters are JSON strings sent as
ordinary (signed) parameters."""

from __future__ import annotations

import base64
import binascii
import json
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
    chunks,
    is_pdf,
)
from app.platforms.lazada.mapping import PLATFORM

Row = dict[str, Any]
PACKABLE = frozenset({"pending", "repacked", "topack"})
PACKED = frozenset({"packed"})
SHIPPED = frozenset({"ready_to_ship", "toship", "shipped", "shipping", "delivered", "confirmed"})
OK_CODE = "0"


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _data(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    result = payload.get("result")
    source = result if isinstance(result, Mapping) else payload
    data = source.get("data")
    return data if isinstance(data, Mapping) else {}


def _check_success(payload: Mapping[str, Any], what: str) -> None:
    result = payload.get("result")
    if isinstance(result, Mapping) and result.get("success") is False:
        raise PermanentError(
            str(result.get("error_msg") or f"Lazada refused {what}"),
            platform=PLATFORM,
            code=str(result.get("error_code") or "") or None,
        )


class LazadaFulfillment(MarketplaceClient):
    """Mixed into LazadaClient, which provides `_call` and `_items_unlimited`."""

    fulfill_batch_size: ClassVar[int] = 20  # pack, RTS and PrintAWB take at most 20
    delivery_type: ClassVar[str] = "dropship"  # the only accepted value
    shipping_allocate_type: ClassVar[str] = "TFS"  # local stores; cross-border is NTFS

    if TYPE_CHECKING:

        async def _call(
            self, method: str, api_path: str, params: Mapping[str, str] | None = None
        ) -> dict[str, Any]: ...

        async def _items_unlimited(
            self, ids: Sequence[str]
        ) -> tuple[dict[str, list[Row]], dict[str, str]]: ...

    async def _rows(self, order_ids: Sequence[str]) -> tuple[dict[str, list[Row]], dict[str, str]]:
        rows: dict[str, list[Row]] = {}
        refused: dict[str, str] = {}
        for batch in chunks(list(order_ids), 50):
            found, failed = await self._items_unlimited(batch)
            rows.update(found)
            refused.update(failed)
        return rows, refused

    async def _order_rows(self, order_id: str) -> list[Row]:
        rows, refused = await self._rows([order_id])
        if order_id in refused or not rows.get(order_id):
            raise PermanentError(
                refused.get(order_id, "Order not found"), platform=PLATFORM, code="700021"
            )
        return rows[order_id]

    async def shipping_options(self, target: ShipTarget) -> ShippingOptions:
        rows = await self._order_rows(target.external_order_id)
        request = {
            "orders": [
                {
                    "order_id": int(target.external_order_id),
                    "order_item_ids": [int(r["order_item_id"]) for r in rows],
                }
            ]
        }
        payload = await self._call(
            "GET", "/order/shipment/providers/get", {"getShipmentProvidersReq": _json(request)}
        )
        data = _data(payload)
        providers = [
            {"code": str(p.get("provider_code")), "name": str(p.get("name"))}
            for p in data.get("shipment_providers") or []
        ]
        return ShippingOptions(
            methods=["pickup", "dropoff"],
            carriers=providers,
            packages=[
                {"packageId": r.get("package_id"), "orderItemId": str(r.get("order_item_id"))}
                for r in rows
                if r.get("package_id")
            ],
            info_needed={"pickup": [], "dropoff": []},
        )

    async def ship(self, targets: Sequence[ShipTarget], request: ShipRequest) -> list[ShipResult]:
        ids = [t.external_order_id for t in targets]
        rows, refused = await self._rows(ids)
        results: dict[str, ShipResult] = {}
        to_pack: list[tuple[str, list[int]]] = []
        packages: dict[str, str] = {}  # order id -> package id ready for RTS
        for order_id in ids:
            order_rows = rows.get(order_id) or []
            if order_id in refused or not order_rows:
                message = refused.get(order_id, "Order not found")
                results[order_id] = ShipResult(order_id, ok=False, message=message)
                continue
            statuses = {str(r.get("status")) for r in order_rows}
            if statuses <= SHIPPED:
                results[order_id] = ShipResult(
                    order_id, ok=False, message="Already shipped", already_shipped=True
                )
                continue
            packable = [int(r["order_item_id"]) for r in order_rows if r.get("status") in PACKABLE]
            if packable:
                to_pack.append((order_id, packable))
                continue
            packed = [r for r in order_rows if r.get("status") in PACKED and r.get("package_id")]
            if packed:
                packages[order_id] = str(packed[0]["package_id"])
            else:
                message = f"Items are {', '.join(sorted(statuses))}; nothing to ship"
                results[order_id] = ShipResult(order_id, ok=False, message=message)
        for batch in chunks(to_pack, self.fulfill_batch_size):
            await self._pack(batch, results, packages)
        for rts_batch in chunks(list(packages.items()), self.fulfill_batch_size):
            await self._ready_to_ship(rts_batch, results)
        return [results[order_id] for order_id in ids]

    async def _pack(
        self,
        batch: Sequence[tuple[str, list[int]]],
        results: dict[str, ShipResult],
        packages: dict[str, str],
    ) -> None:
        pack = {
            "pack_order_list": [
                {"order_id": int(order_id), "order_item_list": items} for order_id, items in batch
            ],
            "delivery_type": self.delivery_type,
            "shipping_allocate_type": self.shipping_allocate_type,
        }
        try:
            payload = await self._call("POST", "/order/fulfill/pack", {"packReq": _json(pack)})
            _check_success(payload, "the pack")
        except MarketplaceError as error:
            if error.retryable:
                raise
            for order_id, _ in batch:
                results[order_id] = ShipResult(order_id, ok=False, message=error.message)
            return
        answered = {
            str(o.get("order_id")): o.get("order_item_list") or []
            for o in _data(payload).get("pack_order_list") or []
        }
        for order_id, _ in batch:
            items = answered.get(order_id)
            if not items:
                results[order_id] = ShipResult(order_id, ok=False, message="Lazada did not pack it")
                continue
            failed = [i for i in items if str(i.get("item_err_code", OK_CODE)) != OK_CODE]
            if failed:
                message = "; ".join(str(i.get("msg") or i.get("item_err_code")) for i in failed)
                results[order_id] = ShipResult(order_id, ok=False, message=message)
                continue
            first = items[0]
            packages[order_id] = str(first.get("package_id"))
            results[order_id] = ShipResult(
                order_id,
                ok=False,  # not shipped until ready-to-ship succeeds
                package_id=str(first.get("package_id")),
                tracking_number=str(first.get("tracking_number") or "") or None,
                carrier=str(first.get("shipment_provider") or "") or None,
            )

    async def _ready_to_ship(
        self, batch: Sequence[tuple[str, str]], results: dict[str, ShipResult]
    ) -> None:
        request = {"packages": [{"package_id": package_id} for _, package_id in batch]}
        try:
            payload = await self._call(
                "POST", "/order/package/rts", {"readyToShipReq": _json(request)}
            )
            _check_success(payload, "ready-to-ship")
        except MarketplaceError as error:
            if error.retryable:
                raise
            for order_id, package_id in batch:
                results[order_id] = ShipResult(
                    order_id, ok=False, package_id=package_id, message=error.message
                )
            return
        answered = {str(p.get("package_id")): p for p in _data(payload).get("packages") or []}
        for order_id, package_id in batch:
            packed = results.get(order_id) or ShipResult(order_id, ok=False)
            row = answered.get(package_id)
            code = str(row.get("item_err_code", OK_CODE)) if row is not None else "missing"
            if code != OK_CODE:
                message = str(row.get("msg") if row else "Lazada did not answer for the package")
                results[order_id] = ShipResult(
                    order_id, ok=False, package_id=package_id, message=message
                )
                continue
            results[order_id] = ShipResult(
                order_id,
                ok=True,
                package_id=package_id,
                tracking_number=packed.tracking_number,
                carrier=packed.carrier,
            )

    async def tracking_number(self, target: ShipTarget) -> str | None:
        rows = await self._order_rows(target.external_order_id)
        codes = [str(r.get("tracking_code") or "") for r in rows]
        return next((c for c in codes if c), None)

    async def labels(self, targets: Sequence[ShipTarget], fmt: LabelFormat) -> list[LabelResult]:
        rows, refused = await self._rows([t.external_order_id for t in targets])
        results: list[LabelResult] = []
        for target in targets:
            order_id = target.external_order_id
            package_ids = sorted(
                {str(r["package_id"]) for r in rows.get(order_id) or [] if r.get("package_id")}
            )
            if not package_ids:
                message = refused.get(order_id) or "The order is not packed yet"
                results.append(LabelResult(order_id, ready=False, message=message))
                continue
            request = {"doc_type": "PDF", "packages": [{"package_id": p} for p in package_ids]}
            payload = await self._call(
                "GET", "/order/package/document/get", {"getDocumentReq": _json(request)}
            )
            encoded = _data(payload).get("file")
            try:
                pdf = base64.b64decode(str(encoded or ""), validate=True)
            except (binascii.Error, ValueError):
                pdf = b""
            if is_pdf(pdf):
                results.append(LabelResult(order_id, ready=True, pdf=pdf))
            else:
                results.append(LabelResult(order_id, ready=False, message="Lazada sent no PDF"))
        return results

    async def _item_ids(self, order_id: str) -> str:
        rows = await self._order_rows(order_id)
        return _json([int(r["order_item_id"]) for r in rows])

    async def cancel_reasons(self, target: ShipTarget) -> list[CancelReason]:
        payload = await self._call(
            "GET",
            "/order/reverse/cancel/validate",
            {
                "order_id": target.external_order_id,
                "order_item_id_list": await self._item_ids(target.external_order_id),
            },
        )
        data = payload.get("data")
        options = data.get("reason_options") if isinstance(data, Mapping) else None
        return [
            CancelReason(str(o.get("reason_id")), str(o.get("reason_name"))) for o in options or []
        ]

    async def cancel_order(self, target: ShipTarget, reason: str) -> None:
        await self._call(
            "GET",
            "/order/reverse/cancel/create",
            {
                "order_id": target.external_order_id,
                "order_item_id_list": await self._item_ids(target.external_order_id),
                "reason_id": reason,
            },
        )

    async def answer_cancellation(self, target: ShipTarget, accept: bool) -> None:
        rows = await self._order_rows(target.external_order_id)
        reverse = next(
            (str(r["reverse_order_id"]) for r in rows if r.get("reverse_order_id")), None
        )
        if reverse is None:
            raise PermanentError(
                "The buyer has not asked to cancel this order", platform=PLATFORM, code="E0122"
            )
        await self._call(
            "GET",
            "/order/reverse/cancel/seller/decide",
            {"reverse_order_id": reverse, "agree_cancel": "true" if accept else "false"},
        )
