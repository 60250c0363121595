from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel
from pydantic_core import to_json

from app.analytics import service
from app.analytics.repository import Window
from app.analytics.schemas import (
    Interval,
    Metric,
    SummaryResponse,
    TimeseriesResponse,
    TopProductsResponse,
)
from app.auth import CurrentUser, ensure_same_user
from app.schemas import error_responses
from app.uow import UowDep

router = APIRouter(prefix="/api/marketplace/analytics", tags=["analytics"])

UserIdQuery = Annotated[
    str | None,
    Query(alias="userId", max_length=128, description="Must equal the token's subject"),
]
FromQuery = Annotated[
    date | None,
    Query(
        alias="from",
        description="First day (YYYY-MM-DD in `tz`), inclusive; default: 29 days before `to`",
    ),
]
ToQuery = Annotated[
    date | None,
    Query(
        alias="to",
        description="Last day (YYYY-MM-DD in `tz`), inclusive; default: today in `tz`",
    ),
]
TzQuery = Annotated[
    str,
    Query(max_length=64, description="IANA time zone the days are counted in"),
]
_ERRORS = error_responses(401, 403, 422, 503)


def _json(body: BaseModel) -> Response:
    # Serialized once here: returning the model would make FastAPI dump and validate it again
    # (a year of daily points is over a thousand objects).
    return Response(body.model_dump_json(by_alias=True), media_type="application/json")


def _window(
    user: str, user_id: str | None, start: date | None, end: date | None, tz: str
) -> Window:
    return service.window(ensure_same_user(user, user_id), start, end, tz)


@router.get("/summary", response_model=SummaryResponse, responses=_ERRORS)
async def summary(
    uow: UowDep,
    user: CurrentUser,
    user_id: UserIdQuery = None,
    start: FromQuery = None,
    end: ToQuery = None,
    tz: TzQuery = service.DEFAULT_TZ,
) -> Response:
    """Orders, cancellations, returns and revenue per marketplace and in total, with each
    connection's `dataAsOf`. A cash-on-delivery order counts on the day it was placed, any
    other on the day it was paid (unpaid prepaid orders do not count); cancelled, returned and
    failed orders are counted apart and left out of revenue."""
    window = _window(user, user_id, start, end, tz)
    return _json(SummaryResponse(data=await service.summary(uow.session, window)))


@router.get("/timeseries", response_model=TimeseriesResponse, responses=_ERRORS)
async def timeseries(
    uow: UowDep,
    user: CurrentUser,
    user_id: UserIdQuery = None,
    start: FromQuery = None,
    end: ToQuery = None,
    interval: Annotated[Interval, Query(description="Bucket size; weeks start on Monday")] = (
        Interval.DAY
    ),
    metric: Annotated[
        Metric, Query(description="orders: a count; revenue: an amount per currency")
    ] = Metric.ORDERS,
    tz: TzQuery = service.DEFAULT_TZ,
) -> Response:
    """One series per marketplace with every bucket of the range, empty ones as 0 (or `{}`).
    A bucket is named by its calendar first day (a Monday, the 1st), and the first and last
    may be partial: only days from `from` to `to` count."""
    window = _window(user, user_id, start, end, tz)
    series = await service.timeseries(uow.session, window, interval, metric)
    return Response(to_json({"data": series}), media_type="application/json")


@router.get("/top-products", response_model=TopProductsResponse, responses=_ERRORS)
async def top_products(
    uow: UowDep,
    user: CurrentUser,
    user_id: UserIdQuery = None,
    start: FromQuery = None,
    end: ToQuery = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Products to list")] = 10,
    tz: TzQuery = service.DEFAULT_TZ,
) -> Response:
    """Best sellers by units, per master SKU (the channel's SKU when a listing is not linked to
    one), with each marketplace's units and revenue; counted orders only, dated as in the
    summary."""
    window = _window(user, user_id, start, end, tz)
    return _json(TopProductsResponse(data=await service.top_products(uow.session, window, limit)))
