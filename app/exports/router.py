"""Streamed exports of orders, customers and inventory as CSV or XLSX.

Included before the domain routers: `/orders/export` must not be read as `/orders/{orderId}`.
Parameters are checked (422) before the first byte; the rows then stream in batches."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from app.auth import CurrentUser, ensure_same_user
from app.deps import SessionmakerDep
from app.exports import sources
from app.exports.writers import MEDIA_TYPES, Batches, Column, ExportFormat, stream
from app.orders import service as orders
from app.orders.schemas import OrderSort
from app.platforms.types import PlatformCode
from app.schemas import error_responses
from app.timezones import iana_zone

router = APIRouter(prefix="/api/marketplace", tags=["exports"])

UserIdQuery = Annotated[
    str | None,
    Query(alias="userId", max_length=128, description="Must equal the token's subject"),
]
FormatQuery = Annotated[ExportFormat, Query(alias="format", description="csv (default) or xlsx")]
TzQuery = Annotated[
    str,
    Query(
        max_length=64,
        description="IANA time zone of the times written (and of date-only bounds)",
        examples=["Asia/Bangkok"],
    ),
]
IncludeBuyerQuery = Annotated[
    bool,
    Query(
        alias="includeBuyer",
        description="true writes phone and e-mail in full; masked by default, as in the lists",
    ),
]
_FILE_RESPONSES = {
    200: {
        "description": "The file, streamed: CSV (UTF-8 with a BOM, a header row) or XLSX",
        "content": {
            MEDIA_TYPES[ExportFormat.CSV]: {"schema": {"type": "string"}},
            MEDIA_TYPES[ExportFormat.XLSX]: {"schema": {"type": "string", "format": "binary"}},
        },
    },
    **error_responses(401, 403, 422, 503),
}


def _zone(tz: str) -> ZoneInfo:
    zone = iana_zone(tz)
    if zone is None:
        raise orders.invalid(
            "tz", f"Unknown time zone '{tz[:64]}'; use an IANA name such as Asia/Bangkok"
        )
    return zone


def _file(
    name: str, fmt: ExportFormat, columns: tuple[Column, ...], batches: Batches
) -> StreamingResponse:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    body: AsyncIterator[bytes] = stream(fmt, columns, batches, title=name.capitalize())
    return StreamingResponse(
        body,
        media_type=MEDIA_TYPES[fmt],
        headers={
            "Content-Disposition": f'attachment; filename="{name}-{stamp}.{fmt.value}"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/orders/export", response_class=StreamingResponse, responses=_FILE_RESPONSES)
async def export_orders(
    sessionmaker: SessionmakerDep,
    user: CurrentUser,
    user_id: UserIdQuery = None,
    fmt: FormatQuery = ExportFormat.CSV,
    platform_code: Annotated[PlatformCode | None, Query(alias="platformCode")] = None,
    connection_id: Annotated[uuid.UUID | None, Query(alias="connectionId")] = None,
    status: Annotated[
        list[str] | None,
        Query(description="As the order list: one or more normalized statuses", max_length=20),
    ] = None,
    created_from: Annotated[
        str | None, Query(alias="createdFrom", max_length=64, description="As the order list")
    ] = None,
    created_to: Annotated[
        str | None, Query(alias="createdTo", max_length=64, description="As the order list")
    ] = None,
    tz: TzQuery = "UTC",
    q: Annotated[str | None, Query(max_length=128, description="As the order list")] = None,
    include_buyer: IncludeBuyerQuery = False,
    include_archived: Annotated[
        bool, Query(alias="includeArchived", description="As the order list")
    ] = False,
) -> StreamingResponse:
    """Every order the order list would show for these filters (all pages), newest first, one
    row each: money as decimals with the currency's minor units, times in `tz`, buyer phone
    and e-mail masked unless `includeBuyer=true`. Streamed in constant memory."""
    params = orders.list_params(
        ensure_same_user(user, user_id),
        platform_code=platform_code,
        connection_id=connection_id,
        statuses=status,
        created_from=created_from,
        created_to=created_to,
        q=q,
        sort=OrderSort.CREATED_DESC,
        limit=1,
        offset=0,
        cursor=None,
        include_total=False,
        include_buyer=include_buyer,
        include_archived=include_archived,
        tz=tz,
    )
    batches = sources.order_rows(
        sessionmaker, params.filter, _zone(tz), include_buyer=params.include_buyer
    )
    return _file("orders", fmt, sources.ORDER_COLUMNS, batches)


@router.get("/customers/export", response_class=StreamingResponse, responses=_FILE_RESPONSES)
async def export_customers(
    sessionmaker: SessionmakerDep,
    user: CurrentUser,
    user_id: UserIdQuery = None,
    fmt: FormatQuery = ExportFormat.CSV,
    q: Annotated[str | None, Query(max_length=128, description="As the customer list")] = None,
    tz: TzQuery = "UTC",
    include_buyer: IncludeBuyerQuery = False,
) -> StreamingResponse:
    """Every customer the customer list would show (all pages), the most recent buyer first;
    `totalSpent` as `THB 1250.00; USD 3.00`, `channels` separated by spaces."""
    owner = ensure_same_user(user, user_id)
    batches = sources.customer_rows(
        sessionmaker, owner, orders.clean_search(q), _zone(tz), include_buyer=include_buyer
    )
    return _file("customers", fmt, sources.CUSTOMER_COLUMNS, batches)


@router.get("/inventory/export", response_class=StreamingResponse, responses=_FILE_RESPONSES)
async def export_inventory(
    sessionmaker: SessionmakerDep,
    user: CurrentUser,
    user_id: UserIdQuery = None,
    fmt: FormatQuery = ExportFormat.CSV,
    q: Annotated[str | None, Query(max_length=128, description="Part of the SKU")] = None,
) -> StreamingResponse:
    """Every master SKU with its figures and rules, and how many listings it is linked to."""
    owner = ensure_same_user(user, user_id)
    return _file(
        "inventory",
        fmt,
        sources.INVENTORY_COLUMNS,
        sources.inventory_rows(sessionmaker, owner, orders.clean_search(q)),
    )
