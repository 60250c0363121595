"""Customers: a user's buyers across channels (see app/customers/service.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.auth import CurrentUser, ensure_same_user
from app.customers import service
from app.customers.schemas import (
    CustomerDetailResponse,
    CustomerErasureResponse,
    CustomerExportResponse,
    CustomerListResponse,
)
from app.schemas import LimitQuery, error_responses
from app.uow import UowDep

router = APIRouter(prefix="/api/marketplace", tags=["customers"])

UserIdQuery = Annotated[
    str | None,
    Query(alias="userId", max_length=128, description="Must equal the token's subject"),
]
CustomerIdPath = Annotated[int, Path(alias="customerId", ge=1, le=2**63 - 1)]
IncludeBuyerQuery = Annotated[
    bool,
    Query(
        alias="includeBuyer",
        description="true shows phone and e-mail in full; by default they are masked "
        "(Thailand's PDPA), as in order lists",
    ),
]
_JSON = "application/json"


@router.get(
    "/customers",
    response_model=CustomerListResponse,
    responses=error_responses(401, 403, 422, 503),
)
async def list_customers(
    uow: UowDep,
    user: CurrentUser,
    user_id: UserIdQuery = None,
    q: Annotated[
        str | None,
        Query(max_length=128, description="Part of a name or e-mail (any case), or phone digits"),
    ] = None,
    limit: LimitQuery = 50,
    cursor: Annotated[
        str | None, Query(max_length=512, description="nextCursor of the previous page")
    ] = None,
    include_buyer: IncludeBuyerQuery = False,
) -> Response:
    """The user's buyers across channels, the most recent buyer first: orders sharing a phone
    (0812345678 = +66812345678), an e-mail (any case) or a platform buyer id, transitively,
    are one customer. Linked by a job after each order ingest (and every 5 minutes for live
    and Messenger orders), so a new order shows here within moments, not in the same call."""
    owner = ensure_same_user(user, user_id)
    body = await service.list_customers(
        uow.session, owner, q=q, limit=limit, cursor=cursor, include_buyer=include_buyer
    )
    return Response(body, media_type=_JSON)


@router.get(
    "/customers/{customerId}",
    response_model=CustomerDetailResponse,
    responses=error_responses(401, 403, 404, 422, 503),
)
async def get_customer(
    uow: UowDep,
    user: CurrentUser,
    customer_id: CustomerIdPath,
    user_id: UserIdQuery = None,
    include_buyer: IncludeBuyerQuery = False,
) -> Response:
    """One customer with their newest orders, masked as the order list masks them."""
    owner = ensure_same_user(user, user_id)
    body = await service.get_customer(uow.session, owner, customer_id, include_buyer=include_buyer)
    return Response(body, media_type=_JSON)


@router.get(
    "/customers/{customerId}/export",
    response_model=CustomerExportResponse,
    responses=error_responses(401, 403, 404, 422, 503),
)
async def export_customer(
    uow: UowDep, user: CurrentUser, customer_id: CustomerIdPath, user_id: UserIdQuery = None
) -> Response:
    """Everything stored about one customer (Thailand's PDPA right of access), as
    `/buyers/export` gives it for one phone: every order in full with its raw payload."""
    owner = ensure_same_user(user, user_id)
    return Response(
        await service.export_customer(uow.session, owner, customer_id), media_type=_JSON
    )


@router.delete(
    "/customers/{customerId}/buyer-data",
    response_model=CustomerErasureResponse,
    responses=error_responses(401, 403, 404, 422, 503),
)
async def erase_customer(
    uow: UowDep, user: CurrentUser, customer_id: CustomerIdPath, user_id: UserIdQuery = None
) -> CustomerErasureResponse:
    """Erase the customer's buyer data (PDPA right to erasure): the name, phone, e-mail and
    address of every one of their orders, and the platforms' copies in the raw payloads, as
    retention erases them; the orders and amounts stay. The customer is gone afterwards."""
    owner = ensure_same_user(user, user_id)
    erased = await service.erase_customer(uow.session, owner, customer_id)
    await uow.commit()
    return CustomerErasureResponse.model_validate(
        {"data": {"customerId": customer_id, "erasedOrders": erased}}
    )
