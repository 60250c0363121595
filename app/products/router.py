from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from app.auth import CurrentUser, ensure_same_user
from app.connections.service import get_connection
from app.deps import SessionmakerDep, SettingsDep
from app.platforms.types import PlatformCode
from app.products import service
from app.products.schemas import ListingPage, ProductSyncRequest, ProductSyncSummary
from app.schemas import DataResponse, LimitQuery, OffsetQuery, error_responses
from app.sync.service import wait_for_finish
from app.uow import UowDep

router = APIRouter(prefix="/api/marketplace", tags=["products"])


@router.post(
    "/sync-products",
    response_model=DataResponse[ProductSyncSummary],
    responses={
        202: {"model": DataResponse[ProductSyncSummary], "description": "Still running"},
        **error_responses(401, 403, 404, 409, 422, 503),
    },
)
async def sync_products(
    body: ProductSyncRequest,
    uow: UowDep,
    user: CurrentUser,
    settings: SettingsDep,
    sessionmaker: SessionmakerDep,
) -> JSONResponse:
    """Start a product sync of one connection and wait up to SYNC_WAIT_SECONDS: 200 with the
    summary when it finished, else 202 (poll `GET /api/marketplace/sync-logs/{syncLogId}`).
    One already running: 409 with its id. Queue down: 503 `queue_unavailable`."""
    owner = ensure_same_user(user, body.user_id)
    connection = await get_connection(uow.session, owner, body.connection_id)
    log = await service.start_product_sync(
        uow, connection, stale_after=timedelta(seconds=settings.sync_stale_seconds)
    )
    await uow.commit()
    log = await wait_for_finish(sessionmaker, log.id, settings.sync_wait_seconds)
    payload = DataResponse(data=service.summary(log)).model_dump(mode="json", by_alias=True)
    return JSONResponse(payload, status_code=202 if log.status == "running" else 200)


@router.get("/products", response_model=ListingPage, responses=error_responses(401, 403, 422, 503))
async def list_products(
    uow: UowDep,
    user: CurrentUser,
    user_id: Annotated[str | None, Query(alias="userId", max_length=128)] = None,
    platform_code: Annotated[PlatformCode | None, Query(alias="platformCode")] = None,
    connection_id: Annotated[uuid.UUID | None, Query(alias="connectionId")] = None,
    q: Annotated[
        str | None, Query(max_length=128, description="Part of the SKU or name, any case")
    ] = None,
    limit: LimitQuery = 50,
    offset: OffsetQuery = 0,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ListingPage:
    """One row per sellable listing (a product, or each of its variations), oldest first."""
    owner = ensure_same_user(user, user_id)
    return await service.list_listings(
        uow.session,
        service.ListingFilter(owner, platform_code, connection_id, q),
        limit=limit,
        offset=offset,
        cursor=cursor,
    )
