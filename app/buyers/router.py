from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.auth import CurrentUser, ensure_same_user
from app.buyers import service
from app.buyers.schemas import BuyerExportResponse
from app.schemas import error_responses
from app.uow import UowDep

router = APIRouter(prefix="/api/marketplace", tags=["buyers"])


@router.get(
    "/buyers/export",
    response_model=BuyerExportResponse,
    responses=error_responses(401, 403, 422, 503),
)
async def export_buyer(
    uow: UowDep,
    user: CurrentUser,
    phone: Annotated[
        str,
        Query(
            min_length=1,
            max_length=64,
            description="The buyer's phone; only its digits count, and a Thai number matches "
            "with or without its country code (0812345678 = +66812345678)",
        ),
    ],
    user_id: Annotated[
        str | None,
        Query(alias="userId", max_length=128, description="Must equal the token's subject"),
    ] = None,
) -> Response:
    """Everything stored about one buyer of the user (Thailand's PDPA right of access): their
    orders with full buyer fields, items and the platforms' raw payloads. A phone no order of
    this user carries gives an empty `orders` list."""
    owner = ensure_same_user(user, user_id)
    body = await service.export_buyer(uow.session, owner, phone)
    return Response(body, media_type="application/json")
