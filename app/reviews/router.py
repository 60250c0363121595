from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from app.auth import CurrentUser, ensure_same_user
from app.deps import CipherDep, GatewayDep, SessionmakerDep, SettingsDep
from app.platforms.types import PlatformCode
from app.reviews import service
from app.reviews.repository import ReviewFilter
from app.reviews.schemas import (
    ReplyRequest,
    ReviewOut,
    ReviewPage,
    ReviewSyncQueued,
    ReviewSyncRequest,
)
from app.schemas import DataResponse, LimitQuery, error_responses
from app.uow import UowDep

router = APIRouter(prefix="/api/marketplace", tags=["reviews"])


@router.post(
    "/sync-reviews",
    status_code=202,
    response_model=DataResponse[ReviewSyncQueued],
    responses=error_responses(401, 403, 404, 409, 422, 503),
)
async def sync_reviews(body: ReviewSyncRequest, uow: UowDep, user: CurrentUser) -> JSONResponse:
    """Queue a review sync of one Shopee or Lazada connection (a job; a sync already queued is
    not queued twice). 409 for a Facebook connection (no review API) or one not live."""
    owner = ensure_same_user(user, body.user_id)
    connection = await service.request_review_sync(uow.session, owner, body.connection_id)
    await uow.commit()
    payload: DataResponse[ReviewSyncQueued] = DataResponse(
        data=ReviewSyncQueued(connection_id=connection.id, status="queued")
    )
    return JSONResponse(payload.model_dump(mode="json", by_alias=True), status_code=202)


@router.get("/reviews", response_model=ReviewPage, responses=error_responses(401, 403, 422, 503))
async def list_reviews(
    uow: UowDep,
    user: CurrentUser,
    user_id: Annotated[str | None, Query(alias="userId", max_length=128)] = None,
    platform_code: Annotated[PlatformCode | None, Query(alias="platformCode")] = None,
    rating: Annotated[int | None, Query(ge=1, le=5, description="Stars, 1 to 5")] = None,
    sku: Annotated[
        str | None, Query(max_length=128, description="Master SKU, or the listing's SKU")
    ] = None,
    limit: LimitQuery = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ReviewPage:
    """The user's product reviews, newest first (keyset paging: pass `nextCursor`). Buyer
    names are masked (first and last character)."""
    owner = ensure_same_user(user, user_id)
    where = ReviewFilter(owner, platform_code.value if platform_code else None, rating, sku)
    return await service.list_reviews(uow.session, where, limit=limit, cursor=cursor)


@router.post(
    "/reviews/{review_id}/reply",
    response_model=DataResponse[ReviewOut],
    responses=error_responses(401, 403, 404, 409, 422, 502, 503),
)
async def reply_to_review(
    review_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    body: ReplyRequest,
    uow: UowDep,
    user: CurrentUser,
    settings: SettingsDep,
    cipher: CipherDep,
    sessionmaker: SessionmakerDep,
    gateway: GatewayDep,
) -> DataResponse[ReviewOut]:
    """Send the seller's reply to the platform now (Shopee `reply_comment`, Lazada
    `/review/seller/reply/add`) and answer 200 with the review. 409 `reply_exists` when it has
    a reply (one per review), `reply_not_allowed` when the platform refuses (its words in the
    message) or has no reply call, `reply_in_progress` while another reply is being sent;
    422 naming `text` when it is empty or too long."""
    owner = ensure_same_user(user, body.user_id)
    deps = service.ReplyDeps(settings, cipher, sessionmaker, gateway)
    return DataResponse(data=await service.reply(uow, deps, owner, review_id, body.text))
