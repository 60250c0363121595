"""POST /api/marketplace/inventory/bulk: JSON rows or a CSV upload (app/inventory/bulk.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from app.auth import CurrentUser, ensure_same_user
from app.inventory import bulk
from app.orders.service import invalid
from app.schemas import error_responses
from app.uow import UowDep

router = APIRouter(prefix="/api/marketplace", tags=["inventory"])

_ITEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["sku"],
    "properties": {
        "sku": {"type": "string", "minLength": 1, "maxLength": bulk.MAX_SKU_CHARS},
        **{
            name: {"type": ["integer", "null"], "minimum": 0, "maximum": bulk.MAX_FIGURE}
            for name in bulk.FIELDS
        },
    },
}
_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["items"],
                    "properties": {
                        "userId": {"type": "string", "minLength": 1, "maxLength": 128},
                        "items": {
                            "type": "array",
                            "maxItems": bulk.MAX_ROWS,
                            "items": _ITEM_SCHEMA,
                        },
                    },
                }
            },
            "text/csv": {
                "schema": {"type": "string"},
                "example": "sku,available,buffer\nSKU-1,10,\nเสื้อ-แดง,5,1\n",
            },
        },
    }
}
_CSV_TYPES = ("text/csv", "application/csv", "application/vnd.ms-excel")


@router.post(
    "/inventory/bulk",
    response_model=bulk.BulkInventoryResults,
    response_model_exclude_none=True,
    responses=error_responses(401, 403, 413, 422, 503),
    openapi_extra=_BODY,
)
async def bulk_inventory(
    request: Request,
    uow: UowDep,
    user: CurrentUser,
    user_id: Annotated[
        str | None, Query(alias="userId", max_length=128, description="The token's subject")
    ] = None,
) -> bulk.BulkInventoryResults:
    """Set the figures and rules of many master SKUs (at most 5,000 rows): a result per row,
    in order; a bad row never stops the others. CSV: a header row with `sku` and any of
    `available`, `buffer`, `maxQuantity`, `zeroBelow`, `lowStockAt`; an empty cell leaves the
    field unchanged, `null` removes a rule. Unknown SKUs are created."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    content = await request.body()
    if kind in _CSV_TYPES:
        rows = bulk.rows_from_csv(content)
        named = None
    elif kind == "application/json" or kind.endswith("+json"):
        named, rows = bulk.parse_json(content)
        if named is not None and user_id is not None and named != user_id:
            raise invalid("userId", "The body's userId differs from the query's")
    else:
        raise invalid("content-type", "Send application/json or text/csv")
    owner = ensure_same_user(user, named or user_id)
    results = await bulk.apply_rows(uow.session, owner, rows)
    await uow.commit()
    return bulk.BulkInventoryResults(data=results)
