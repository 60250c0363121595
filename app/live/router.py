from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from app.auth import CurrentUser, ensure_same_user
from app.live import service
from app.live.schemas import (
    LiveCommentList,
    LiveSessionCreate,
    LiveSessionList,
    LiveSessionOut,
    LiveSessionUpdate,
    OrderAction,
    SessionStatus,
)
from app.orders.service import get_order
from app.schemas import DataResponse, LimitQuery, OffsetQuery, error_responses
from app.uow import UowDep

router = APIRouter(prefix="/api/marketplace", tags=["live"])

UserIdQuery = Annotated[
    str | None, Query(alias="userId", max_length=128, description="Must equal the token's subject")
]
OrderIdPath = Annotated[int, Path(ge=1, le=2**63 - 1)]
_ORDER_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {"description": "The order, as GET /api/marketplace/orders/{orderId} answers it"}
}


@router.post(
    "/live-sessions",
    status_code=201,
    response_model=DataResponse[LiveSessionOut],
    responses=error_responses(401, 403, 404, 409, 422, 503),
)
async def create_live_session(
    body: LiveSessionCreate, uow: UowDep, user: CurrentUser
) -> DataResponse[LiveSessionOut]:
    """Open a live session on a Facebook post: comments "CF <code>" on it become orders."""
    owner = ensure_same_user(user, body.user_id)
    live = await service.create_session(uow.session, owner, body)
    await uow.commit()
    return DataResponse(data=live)


@router.get(
    "/live-sessions", response_model=LiveSessionList, responses=error_responses(401, 403, 422, 503)
)
async def list_live_sessions(
    uow: UowDep,
    user: CurrentUser,
    user_id: UserIdQuery = None,
    connection_id: Annotated[uuid.UUID | None, Query(alias="connectionId")] = None,
    status: SessionStatus | None = None,
    limit: LimitQuery = 50,
) -> LiveSessionList:
    owner = ensure_same_user(user, user_id)
    sessions = await service.list_sessions(
        uow.session, owner, connection_id=connection_id, status=status, limit=limit
    )
    return LiveSessionList(data=sessions)


@router.get(
    "/live-sessions/{session_id}",
    response_model=DataResponse[LiveSessionOut],
    responses=error_responses(401, 403, 404, 422, 503),
)
async def get_live_session(
    session_id: uuid.UUID, uow: UowDep, user: CurrentUser, user_id: UserIdQuery = None
) -> DataResponse[LiveSessionOut]:
    owner = ensure_same_user(user, user_id)
    return DataResponse(data=await service.get_session(uow.session, owner, session_id))


@router.patch(
    "/live-sessions/{session_id}",
    response_model=DataResponse[LiveSessionOut],
    responses=error_responses(401, 403, 404, 409, 422, 503),
)
async def update_live_session(
    session_id: uuid.UUID, body: LiveSessionUpdate, uow: UowDep, user: CurrentUser
) -> DataResponse[LiveSessionOut]:
    """Add or change products (a raised `quantity` serves the waiting list), or close."""
    owner = ensure_same_user(user, body.user_id)
    live = await service.update_session(uow.session, owner, session_id, body)
    await uow.commit()
    return DataResponse(data=live)


@router.get(
    "/live-sessions/{session_id}/comments",
    response_model=LiveCommentList,
    responses=error_responses(401, 403, 404, 422, 503),
)
async def list_live_comments(
    session_id: uuid.UUID,
    uow: UowDep,
    user: CurrentUser,
    user_id: UserIdQuery = None,
    limit: LimitQuery = 200,
    offset: OffsetQuery = 0,
) -> LiveCommentList:
    """Every captured comment in comment-time order, with what became of it."""
    owner = ensure_same_user(user, user_id)
    comments = await service.list_comments(
        uow.session, owner, session_id, limit=limit, after=offset
    )
    return LiveCommentList(data=comments)


async def _order_answer(uow: UowDep, owner: str, order_id: int) -> Response:
    body = await get_order(uow.session, owner, order_id)
    return Response(content=body, media_type="application/json")


@router.post(
    "/orders/{order_id}/mark-paid",
    responses=_ORDER_ANSWER | error_responses(401, 403, 404, 409, 422, 503),
)
async def mark_order_paid(
    order_id: OrderIdPath, body: OrderAction, uow: UowDep, user: CurrentUser
) -> Response:
    """A live or Messenger order was paid: `unpaid` -> `pending`. 409 for other orders."""
    owner = ensure_same_user(user, body.user_id)
    await service.mark_paid(uow.session, owner, order_id)
    await uow.commit()
    return await _order_answer(uow, owner, order_id)


@router.post(
    "/orders/{order_id}/cancel",
    responses=_ORDER_ANSWER | error_responses(401, 403, 404, 409, 422, 503),
    # app/fulfillment's cancel (registered first) serves this path and delegates here.
    include_in_schema=False,
)
async def cancel_order(
    order_id: OrderIdPath, body: OrderAction, uow: UowDep, user: CurrentUser
) -> Response:
    """Cancel a live or Messenger order: its stock goes back, first to the lines waiting."""
    owner = ensure_same_user(user, body.user_id)
    await service.cancel(uow.session, owner, order_id)
    await uow.commit()
    return await _order_answer(uow, owner, order_id)
