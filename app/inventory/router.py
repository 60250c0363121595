from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.auth import CurrentUser, ensure_same_user
from app.inventory import bulk, service
from app.inventory.bulk import BulkMappingResults
from app.inventory.schemas import (
    InventoryPage,
    InventoryRow,
    InventoryUpdate,
    LedgerPage,
    SkuMappingBulk,
    SkuMappingUpdate,
)
from app.products.schemas import ListingOut
from app.products.service import get_listing
from app.schemas import DataResponse, LimitQuery, error_responses
from app.uow import UowDep

router = APIRouter(prefix="/api/marketplace", tags=["inventory"])

UserIdQuery = Annotated[
    str | None, Query(alias="userId", max_length=128, description="Must equal the token's subject")
]
SkuPath = Annotated[str, Path(min_length=1, max_length=128, description="The master SKU")]
CursorQuery = Annotated[str | None, Query(max_length=200)]


@router.put(
    "/sku-mappings",
    response_model=DataResponse[ListingOut] | BulkMappingResults,
    responses=error_responses(401, 403, 404, 422, 503),
)
async def put_sku_mapping(
    body: SkuMappingUpdate | SkuMappingBulk, uow: UowDep, user: CurrentUser
) -> DataResponse[ListingOut] | Response:
    """Link a listing to a master SKU (`masterSku: null` unlinks it); answers the listing. With
    `items: [{listingId, masterSku}]` (at most 5,000), many: a result per row, in order."""
    owner = ensure_same_user(user, body.user_id)
    if isinstance(body, SkuMappingBulk):
        results = await bulk.apply_mappings(uow.session, owner, body.items)
        await uow.commit()
        # As the inventory bulk answers: a row's `error` only when it failed.
        answer = BulkMappingResults(data=results).model_dump_json(by_alias=True, exclude_none=True)
        return Response(content=answer, media_type="application/json")
    listing_id = await service.update_mapping(uow, owner, body)
    listing = await get_listing(uow.session, owner, listing_id)
    await uow.commit()
    return DataResponse(data=listing)


@router.get(
    "/inventory", response_model=InventoryPage, responses=error_responses(401, 403, 422, 503)
)
async def list_inventory(
    uow: UowDep,
    user: CurrentUser,
    user_id: UserIdQuery = None,
    q: Annotated[str | None, Query(max_length=128, description="Part of the SKU")] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> InventoryPage:
    """Per master SKU: the figures, the rules and every linked listing's push state."""
    owner = ensure_same_user(user, user_id)
    return await service.list_inventory(uow.session, owner, q=q, limit=limit, cursor=cursor)


@router.get(
    "/inventory/{sku}",
    response_model=DataResponse[InventoryRow],
    responses=error_responses(401, 403, 404, 422, 503),
)
async def get_inventory(
    sku: SkuPath, uow: UowDep, user: CurrentUser, user_id: UserIdQuery = None
) -> DataResponse[InventoryRow]:
    owner = ensure_same_user(user, user_id)
    return DataResponse(data=await service.get_inventory(uow.session, owner, sku))


@router.put(
    "/inventory/{sku}",
    response_model=DataResponse[InventoryRow],
    responses=error_responses(401, 403, 422, 503),
)
async def put_inventory(
    sku: SkuPath, body: InventoryUpdate, uow: UowDep, user: CurrentUser
) -> DataResponse[InventoryRow]:
    """Set the available figure and/or the rules; every linked listing is pushed the result."""
    owner = ensure_same_user(user, body.user_id)
    row = await service.update_inventory(uow, owner, sku, body)
    await uow.commit()
    return DataResponse(data=row)


@router.get(
    "/inventory/{sku}/ledger",
    response_model=LedgerPage,
    responses=error_responses(401, 403, 404, 422, 503),
)
async def get_ledger(
    sku: SkuPath,
    uow: UowDep,
    user: CurrentUser,
    user_id: UserIdQuery = None,
    limit: LimitQuery = 200,
    cursor: CursorQuery = None,
) -> LedgerPage:
    """Why a channel shows what it shows: every set, reserve, release, push and read-back,
    oldest first."""
    owner = ensure_same_user(user, user_id)
    return await service.ledger_page(uow.session, owner, sku, limit=limit, cursor=cursor)
