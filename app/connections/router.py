from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from app.auth import CurrentUser, ensure_same_user
from app.connections import service
from app.connections.schemas import ConnectionCreate, ConnectionOut, ConnectionUpdate, PlatformOut
from app.deps import CipherDep, GatewayDep, SettingsDep
from app.schemas import DataResponse, error_responses
from app.uow import UowDep

ConnectionIdPath = Annotated[uuid.UUID, Path(alias="connectionId")]

router = APIRouter(prefix="/api/marketplace", tags=["connections"])

UserIdQuery = Annotated[
    str | None,
    Query(alias="userId", max_length=128, description="Must equal the token's subject"),
]


@router.get(
    "/platforms",
    response_model=DataResponse[list[PlatformOut]],
    responses=error_responses(503),
)
async def list_platforms(uow: UowDep, settings: SettingsDep) -> DataResponse[list[PlatformOut]]:
    """The marketplaces, with the fields a connect form needs (apiKey and apiSecret are
    optional where the operator has configured the marketplace's app). No token required."""
    return DataResponse(data=await service.list_platforms(uow.session, settings))


@router.get(
    "/connections",
    response_model=DataResponse[list[ConnectionOut]],
    responses=error_responses(401, 403, 422, 503),
)
async def list_connections(
    cipher: CipherDep,
    uow: UowDep,
    user: CurrentUser,
    user_id: UserIdQuery = None,
    include_disconnected: Annotated[bool, Query(alias="includeDisconnected")] = False,
) -> DataResponse[list[ConnectionOut]]:
    owner = ensure_same_user(user, user_id)
    rows = await service.list_connections(
        uow.session, owner, include_disconnected=include_disconnected
    )
    return DataResponse(data=[service.to_out(row, cipher) for row in rows])


@router.post(
    "/connections",
    status_code=status.HTTP_201_CREATED,
    response_model=DataResponse[ConnectionOut],
    responses=error_responses(400, 401, 403, 409, 422, 502, 503),
)
async def create_connection(
    body: ConnectionCreate,
    uow: UowDep,
    user: CurrentUser,
    cipher: CipherDep,
    gateway: GatewayDep,
) -> DataResponse[ConnectionOut]:
    """Checks the credentials with the marketplace (they must belong to `shopId`), stores
    them encrypted and starts the first sync (`startSync: false` leaves it to the schedule).
    The same shop connected again by the same user is 409 `connection_exists` with its
    `connectionId`; with the job queue down nothing is stored and the answer is 503."""
    if body.user_id is not None:
        ensure_same_user(user, body.user_id.strip())
    connection = await service.create_connection(uow, body, cipher=cipher, gateway=gateway)
    await uow.commit()
    return DataResponse(data=service.to_out(connection, cipher))


@router.get(
    "/connections/{connectionId}",
    response_model=DataResponse[ConnectionOut],
    responses=error_responses(401, 403, 404, 422, 503),
)
async def get_connection(
    cipher: CipherDep,
    connection_id: ConnectionIdPath,
    uow: UowDep,
    user: CurrentUser,
    user_id: UserIdQuery = None,
) -> DataResponse[ConnectionOut]:
    owner = ensure_same_user(user, user_id)
    connection = await service.get_connection(uow.session, owner, connection_id)
    return DataResponse(data=service.to_out(connection, cipher))


@router.patch(
    "/connections/{connectionId}",
    response_model=DataResponse[ConnectionOut],
    responses=error_responses(400, 401, 403, 404, 409, 422, 502, 503),
)
async def update_connection(
    connection_id: ConnectionIdPath,
    body: ConnectionUpdate,
    uow: UowDep,
    user: CurrentUser,
    cipher: CipherDep,
    gateway: GatewayDep,
    user_id: UserIdQuery = None,
) -> DataResponse[ConnectionOut]:
    """Change the shop name, credentials (checked with the marketplace first), sync schedule
    (`syncIntervalMinutes: null` turns it off) or active flag. New credentials after a refusal
    start a catch-up sync; with the job queue down nothing changes and the answer is 503."""
    ensure_same_user(user, user_id)
    owner = ensure_same_user(user, body.user_id)
    connection = await service.update_connection(
        uow, owner, connection_id, body, cipher=cipher, gateway=gateway
    )
    await uow.commit()
    return DataResponse(data=service.to_out(connection, cipher))


@router.delete(
    "/connections/{connectionId}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 409, 422, 503),
)
async def disconnect(
    cipher: CipherDep,
    connection_id: ConnectionIdPath,
    uow: UowDep,
    user: CurrentUser,
    user_id: UserIdQuery = None,
    erase_buyer_data: Annotated[
        bool,
        Query(
            alias="eraseBuyerData",
            description="true also erases the buyer name, contact details and address of "
            "this connection's orders (the orders, items and amounts stay)",
        ),
    ] = False,
) -> Response:
    """Disconnect: credentials are erased, stored orders are kept (with `eraseBuyerData=true`,
    without their buyer data, in the same transaction). A running sync stops at its next
    batch and writes nothing more. 409 `concurrent_change` when jobs kept writing the same
    rows (nothing changed; retry)."""
    owner = ensure_same_user(user, user_id)
    await service.disconnect(
        uow.session, owner, connection_id, cipher=cipher, erase_buyer_data=erase_buyer_data
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
