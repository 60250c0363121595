"""Bulk mark-paid and cancel of live and Messenger orders: the single actions of app/live,
each order in its own savepoint (a deadlock with another writer retries the row), one result
per order in the order given."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from app.bulk import RowError, RowStatus, apply_row
from app.live import service as live
from app.schemas import CamelModel

MAX_ORDERS = 500

OrderId = Annotated[int, Field(ge=1, le=2**63 - 1)]


class BulkOrderActionName(StrEnum):
    MARK_PAID = "mark-paid"
    CANCEL = "cancel"


class BulkOrderAction(CamelModel):
    user_id: str = Field(min_length=1, max_length=128)
    action: BulkOrderActionName
    order_ids: list[OrderId] = Field(min_length=1, max_length=MAX_ORDERS)


class BulkOrderResult(CamelModel):
    order_id: int
    status: RowStatus
    error: RowError | None = None


class BulkOrderResults(CamelModel):
    data: list[BulkOrderResult]


_ACTIONS = {BulkOrderActionName.MARK_PAID: live.mark_paid, BulkOrderActionName.CANCEL: live.cancel}


async def apply_action(
    session: AsyncSession, owner: str, action: BulkOrderActionName, order_ids: list[int]
) -> list[BulkOrderResult]:
    """A marketplace order is the row error `not_a_social_order`, another user's `not_found`,
    one in the wrong state `order_state_conflict`, as the single actions answer them."""
    run = _ACTIONS[action]
    seen: set[int] = set()
    results: list[BulkOrderResult] = []
    for index, order_id in enumerate(order_ids):
        field = f"orderIds[{index}]"
        error: RowError | None
        if order_id in seen:
            error = RowError(
                code="duplicate_order", message="This order is already in the list", field=field
            )
        else:
            seen.add(order_id)

            async def apply(order_id: int = order_id) -> None:
                await run(session, owner, order_id)

            error = await apply_row(session, apply, field=field)
            if error is not None:
                error = error.model_copy(update={"field": field})
        results.append(
            BulkOrderResult(
                order_id=order_id,
                status=RowStatus.OK if error is None else RowStatus.ERROR,
                error=error,
            )
        )
    return results
