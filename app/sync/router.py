from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from app.auth import CurrentUser, ensure_same_user
from app.connections.service import get_connection
from app.deps import SessionmakerDep, SettingsDep
from app.schemas import DataResponse, OffsetQuery, error_responses
from app.sync import service
from app.sync.schemas import SyncLogPage, SyncRequest, SyncSummary
from app.uow import UowDep

router = APIRouter(prefix="/api/marketplace", tags=["sync"])


@router.post(
    "/sync-orders",
    response_model=DataResponse[SyncSummary],
    responses={
        202: {"model": DataResponse[SyncSummary], "description": "Still running"},
        **error_responses(401, 403, 404, 409, 422, 503),
    },
)
async def sync_orders(
    body: SyncRequest,
    uow: UowDep,
    user: CurrentUser,
    settings: SettingsDep,
    sessionmaker: SessionmakerDep,
) -> JSONResponse:
    """Start a sync of one connection's orders and wait up to SYNC_WAIT_SECONDS for it:
    200 with the summary when it finished in time, else 202 with the progress so far (poll
    `GET /api/marketplace/sync-logs/{syncLogId}`). A sync already running: 409 with its id.
    With the job queue (Redis) down: 503 `queue_unavailable`, and nothing is left behind."""
    owner = ensure_same_user(user, body.user_id)
    connection = await get_connection(uow.session, owner, body.connection_id)
    log = await service.start_sync(
        uow,
        connection,
        full=body.full,
        stale_after=timedelta(seconds=settings.sync_stale_seconds),
    )
    await uow.commit()  # the job must see the log, and the client its id, even if we wait
    log = await service.wait_for_finish(sessionmaker, log.id, settings.sync_wait_seconds)
    payload = DataResponse(data=service.summary(log)).model_dump(mode="json", by_alias=True)
    return JSONResponse(payload, status_code=202 if log.status == "running" else 200)


@router.get(
    "/sync-logs/{syncLogId}",
    response_model=DataResponse[SyncSummary],
    responses=error_responses(401, 403, 404, 422, 503),
)
async def get_sync_log(
    sync_log_id: Annotated[uuid.UUID, Path(alias="syncLogId")],
    uow: UowDep,
    user: CurrentUser,
    user_id: Annotated[str | None, Query(alias="userId", max_length=128)] = None,
) -> DataResponse[SyncSummary]:
    """One sync's live progress or outcome."""
    owner = ensure_same_user(user, user_id)
    return DataResponse(data=await service.get_log(uow.session, owner, sync_log_id))


@router.get("/sync-logs", response_model=SyncLogPage, responses=error_responses(401, 403, 422, 503))
async def list_sync_logs(
    uow: UowDep,
    user: CurrentUser,
    user_id: Annotated[str | None, Query(alias="userId", max_length=128)] = None,
    connection_id: Annotated[uuid.UUID | None, Query(alias="connectionId")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: OffsetQuery = 0,
) -> SyncLogPage:
    """Sync history, newest first."""
    owner = ensure_same_user(user, user_id)
    rows, total = await service.list_logs(
        uow.session, owner, connection_id=connection_id, limit=limit, offset=offset
    )
    return SyncLogPage(data=rows, pagination={"total": total, "limit": limit, "offset": offset})
