"""Fulfillment endpoints: shipping options, ship (one or many), labels, cancel, buyer requests."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from app.auth import CurrentUser, ensure_same_user
from app.fulfillment import service
from app.fulfillment.schemas import (
    BulkShipBody,
    CancelBody,
    CancellationAnswer,
    CancelReasonOut,
    FulfillmentList,
    FulfillmentOut,
    FulfillmentPage,
    FulfillmentStatus,
    LabelFormat,
    LabelsBody,
    ShipBody,
    ShippingOptionsOut,
)
from app.live import service as live_service
from app.orders.service import get_order
from app.schemas import DataResponse, LimitQuery, error_responses
from app.uow import UowDep
from app.worker_context import WorkerContext

router = APIRouter(prefix="/api/marketplace", tags=["fulfillment"])

OrderIdPath = Annotated[int, Path(alias="orderId", ge=1, le=2**63 - 1)]
UserIdQuery = Annotated[
    str | None, Query(alias="userId", max_length=128, description="Must equal the token's subject")
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="The same key again answers the same fulfillment and ships nothing twice",
    ),
]
_PDF: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/pdf": {}}, "description": "The airway bill(s) as one PDF"}
}
_ORDER: dict[int | str, dict[str, Any]] = {
    200: {"description": "The order, as GET /api/marketplace/orders/{orderId} answers it"}
}


def clients(request: Request) -> service.Clients:
    """The API process's way to a connection's marketplace client (built once per app)."""
    state = request.app.state
    context = getattr(state, "fulfillment_context", None)
    if context is None:
        gateway = state.platform_gateway
        context = WorkerContext(
            settings=state.settings,
            database=state.database,
            cipher=state.cipher,
            http=gateway.http_client,
            gateway=gateway,
            redis=state.redis,
        )
        state.fulfillment_context = context
    return service.Clients(context)


def _accepted(data: Any) -> JSONResponse:
    return JSONResponse({"data": data}, status_code=202)


@router.get(
    "/orders/{orderId}/shipping-options",
    response_model=DataResponse[ShippingOptionsOut],
    responses=error_responses(401, 403, 404, 409, 422, 503),
)
async def shipping_options(
    request: Request,
    order_id: OrderIdPath,
    uow: UowDep,
    user: CurrentUser,
    user_id: UserIdQuery = None,
    package_number: Annotated[str | None, Query(alias="packageNumber", max_length=255)] = None,
) -> DataResponse[ShippingOptionsOut]:
    """What a shipment of the order needs: Shopee pickup addresses and slots, drop-off, non
    integrated (per package of a split order); Lazada's providers; Meta's carrier codes; the
    seller's own carriers for live and Messenger orders."""
    owner = ensure_same_user(user, user_id)
    options = await service.shipping_options(
        uow.session, clients(request), owner, order_id, package_number
    )
    return DataResponse(data=options)


@router.post(
    "/orders/{orderId}/ship",
    status_code=202,
    response_model=DataResponse[FulfillmentOut],
    responses=error_responses(401, 403, 404, 409, 422, 503),
)
async def ship_order(
    order_id: OrderIdPath,
    body: ShipBody,
    uow: UowDep,
    user: CurrentUser,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Arrange shipment: 202 with a `requested` fulfillment that turns `shipped` or `failed`
    (with the platform's words) once the marketplace answers. Live and Messenger orders are
    `shipped` at once with the tracking number given."""
    owner = ensure_same_user(user, body.user_id)
    fulfillment = await service.request_ship(uow.session, owner, order_id, body, idempotency_key)
    await uow.commit()
    return _accepted(service.as_data([fulfillment])[0])


@router.post(
    "/fulfillments",
    status_code=202,
    response_model=DataResponse[list[FulfillmentOut]],
    responses=error_responses(401, 403, 404, 422, 503),
)
async def ship_orders(body: BulkShipBody, uow: UowDep, user: CurrentUser) -> JSONResponse:
    """Ship up to 500 orders with one method: one fulfillment per order, in the order given,
    shipped in the platforms' batches (Shopee 50 packages, Lazada 20 orders per call)."""
    owner = ensure_same_user(user, body.user_id)
    fulfillments = await service.request_bulk(uow.session, owner, body)
    await uow.commit()
    return _accepted(service.as_data(fulfillments))


@router.get(
    "/fulfillments", response_model=FulfillmentList, responses=error_responses(401, 403, 422, 503)
)
async def list_fulfillments(
    uow: UowDep,
    user: CurrentUser,
    user_id: UserIdQuery = None,
    status: FulfillmentStatus | None = None,
    order_id: Annotated[int | None, Query(alias="orderId", ge=1, le=2**63 - 1)] = None,
    limit: LimitQuery = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> FulfillmentList:
    """Newest first; page with `cursor` = the previous page's `nextCursor`."""
    owner = ensure_same_user(user, user_id)
    rows, following = await service.list_fulfillments(
        uow.session,
        owner,
        status=status.value if status else None,
        order_id=order_id,
        limit=limit,
        cursor=cursor,
    )
    return FulfillmentList(
        data=[service.out(f) for f in rows], pagination=FulfillmentPage(next_cursor=following)
    )


def _pdf(content: bytes, name: str) -> Response:
    return Response(
        content,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}.pdf"'},
    )


@router.get(
    "/orders/{orderId}/label",
    response_class=Response,
    responses=_PDF | error_responses(401, 403, 404, 409, 422, 503),
)
async def order_label(
    request: Request,
    order_id: OrderIdPath,
    uow: UowDep,
    user: CurrentUser,
    user_id: UserIdQuery = None,
    format: LabelFormat = LabelFormat.A6,
) -> Response:
    """The order's airway bill (after shipping). 409 `label_not_ready` with `Retry-After`."""
    owner = ensure_same_user(user, user_id)
    retry = request.app.state.settings.fulfillment_label_retry_seconds
    content = await service.labels_pdf(
        uow.session, clients(request), owner, [order_id], format, retry
    )
    return _pdf(content, f"label-{order_id}")


@router.post(
    "/labels",
    response_class=Response,
    responses=_PDF | error_responses(401, 403, 404, 409, 422, 503),
)
async def labels(request: Request, body: LabelsBody, uow: UowDep, user: CurrentUser) -> Response:
    """The airway bills of up to 100 orders as one PDF, in the order given."""
    owner = ensure_same_user(user, body.user_id)
    retry = request.app.state.settings.fulfillment_label_retry_seconds
    content = await service.labels_pdf(
        uow.session, clients(request), owner, body.order_ids, body.format, retry
    )
    return _pdf(content, "labels")


@router.get(
    "/orders/{orderId}/cancel-reasons",
    response_model=DataResponse[list[CancelReasonOut]],
    responses=error_responses(401, 403, 404, 409, 422, 503),
)
async def cancel_reasons(
    request: Request,
    order_id: OrderIdPath,
    uow: UowDep,
    user: CurrentUser,
    user_id: UserIdQuery = None,
) -> DataResponse[list[CancelReasonOut]]:
    """The platform's own reason codes (Shopee OUT_OF_STOCK, ...; Lazada's reason ids)."""
    owner = ensure_same_user(user, user_id)
    reasons = await service.cancel_reasons(uow.session, clients(request), owner, order_id)
    return DataResponse(data=reasons)


@router.post(
    "/orders/{orderId}/cancel",
    responses=_ORDER | error_responses(401, 403, 404, 409, 422, 503),
)
async def cancel_order(
    request: Request, order_id: OrderIdPath, body: CancelBody, uow: UowDep, user: CurrentUser
) -> Response:
    """Cancel an order. Marketplace orders need `reason` (a code of cancel-reasons; without
    it: 409); live and Messenger orders are cancelled here and their stock goes back first to
    the lines waiting."""
    owner = ensure_same_user(user, body.user_id)
    order = await service.load_order(uow.session, owner, order_id)
    if body.reason is None or order.channel in service.SOCIAL_CHANNELS:
        # The live/Messenger cancel (app/live); it answers 409 for a marketplace order.
        await live_service.cancel(uow.session, owner, order_id)
    else:
        await service.cancel_marketplace_order(
            uow.session, clients(request), owner, order_id, body.reason
        )
    await uow.commit()
    return Response(await get_order(uow.session, owner, order_id), media_type="application/json")


@router.post(
    "/orders/{orderId}/cancellation-request",
    responses=_ORDER | error_responses(401, 403, 404, 409, 422, 503),
)
async def answer_cancellation_request(
    request: Request,
    order_id: OrderIdPath,
    body: CancellationAnswer,
    uow: UowDep,
    user: CurrentUser,
) -> Response:
    """Accept or refuse the buyer's cancellation request (Shopee IN_CANCEL, Lazada)."""
    owner = ensure_same_user(user, body.user_id)
    await service.answer_cancellation(uow.session, clients(request), owner, order_id, body.accept)
    await uow.commit()
    return Response(await get_order(uow.session, owner, order_id), media_type="application/json")
