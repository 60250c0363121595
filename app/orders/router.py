from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.auth import CurrentUser, ensure_same_user
from app.orders import service
from app.orders.schemas import OrderDetailResponse, OrderListResponse, OrderSort
from app.platforms.types import OrderStatus, PlatformCode
from app.schemas import LimitQuery, OffsetQuery, error_responses
from app.uow import UowDep

router = APIRouter(prefix="/api/marketplace", tags=["orders"])

UserIdQuery = Annotated[
    str | None,
    Query(alias="userId", max_length=128, description="Must equal the token's subject"),
]
_JSON = "application/json"


@router.get(
    "/orders", response_model=OrderListResponse, responses=error_responses(401, 403, 422, 503)
)
async def list_orders(
    uow: UowDep,
    user: CurrentUser,
    user_id: UserIdQuery = None,
    platform_code: Annotated[PlatformCode | None, Query(alias="platformCode")] = None,
    connection_id: Annotated[uuid.UUID | None, Query(alias="connectionId")] = None,
    status: Annotated[
        list[str] | None,
        Query(
            description="Normalized status, one or more of: "
            + ", ".join(s.value for s in OrderStatus)
            + ". Repeat the parameter or separate the values by commas.",
            max_length=20,
        ),
    ] = None,
    created_from: Annotated[
        str | None,
        Query(
            alias="createdFrom",
            max_length=64,
            description="Inclusive: a date (YYYY-MM-DD: from the start of that day in `tz`) or "
            "an ISO-8601 date-time (without an offset: in `tz`)",
            examples=["2026-12-02"],
        ),
    ] = None,
    created_to: Annotated[
        str | None,
        Query(
            alias="createdTo",
            max_length=64,
            description="Inclusive: a date (YYYY-MM-DD: to the end of that day in `tz`) or "
            "an ISO-8601 date-time (without an offset: in `tz`)",
            examples=["2026-12-02"],
        ),
    ] = None,
    tz: Annotated[
        str,
        Query(
            max_length=64,
            description="IANA time zone of date-only bounds and of times without an offset",
        ),
    ] = "UTC",
    q: Annotated[
        str | None,
        Query(
            max_length=128,
            description="Order id (exact or prefix), buyer name (part, any case) or phone digits",
        ),
    ] = None,
    sort: Annotated[OrderSort, Query(description="Newest first by default")] = (
        OrderSort.CREATED_DESC
    ),
    limit: LimitQuery = 50,
    offset: OffsetQuery = 0,
    cursor: Annotated[
        str | None,
        Query(
            max_length=512,
            description="nextCursor of the previous page (keyset paging; not with offset)",
        ),
    ] = None,
    include_total: Annotated[
        bool,
        Query(
            alias="includeTotal",
            description="false skips counting the matching orders (pagination.total is null)",
        ),
    ] = True,
    include_buyer: Annotated[
        bool,
        Query(
            alias="includeBuyer",
            description="true shows the buyer's phone, e-mail and street in full; by default "
            "they are masked (phone: last 4 digits) to protect buyer data (Thailand's PDPA)",
        ),
    ] = False,
    include_archived: Annotated[
        bool,
        Query(
            alias="includeArchived",
            description="true lists archived orders too (finished orders older than "
            "ORDER_ARCHIVE_AFTER_DAYS, left out by default)",
        ),
    ] = False,
) -> Response:
    """Orders of every connection of the user, newest first, in one shape: money as decimal
    strings, times in UTC, line items included (the raw payload is on the detail endpoint).

    Page with `offset` (as documented) or, fast at any depth and stable while new orders
    arrive, with `cursor` = the previous page's `nextCursor`. `pagination.total` counts every
    order matching the filters; `includeTotal=false` skips that count for very large shops.
    Archived orders (finished and older than ORDER_ARCHIVE_AFTER_DAYS) are left out unless
    `includeArchived=true`; order detail always shows them."""
    params = service.list_params(
        ensure_same_user(user, user_id),
        platform_code=platform_code,
        connection_id=connection_id,
        statuses=status,
        created_from=created_from,
        created_to=created_to,
        q=q,
        sort=sort,
        limit=limit,
        offset=offset,
        cursor=cursor,
        include_total=include_total,
        include_buyer=include_buyer,
        include_archived=include_archived,
        tz=tz,
    )
    return Response(await service.list_orders(uow.session, params), media_type=_JSON)


@router.get(
    "/orders/{orderId}",
    response_model=OrderDetailResponse,
    responses=error_responses(401, 403, 404, 422, 503),
)
async def get_order(
    uow: UowDep,
    user: CurrentUser,
    order_id: Annotated[int, Path(alias="orderId", ge=1, le=2**63 - 1)],
    user_id: UserIdQuery = None,
) -> Response:
    """One order with its items and the platform's raw payload, buyer details in full."""
    owner = ensure_same_user(user, user_id)
    return Response(await service.get_order(uow.session, owner, order_id), media_type=_JSON)
