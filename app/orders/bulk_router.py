"""POST /api/marketplace/orders/bulk (app/orders/bulk.py)."""

from __future__ import annotations

from fastapi import APIRouter

from app.auth import CurrentUser, ensure_same_user
from app.orders import bulk
from app.schemas import error_responses
from app.uow import UowDep

router = APIRouter(prefix="/api/marketplace", tags=["orders"])


@router.post(
    "/orders/bulk",
    response_model=bulk.BulkOrderResults,
    response_model_exclude_none=True,
    responses=error_responses(401, 403, 422, 503),
)
async def bulk_order_action(
    body: bulk.BulkOrderAction, uow: UowDep, user: CurrentUser
) -> bulk.BulkOrderResults:
    """Mark paid or cancel many live and Messenger orders (at most 500): a result per order,
    in order; an order that cannot be changed never stops the others."""
    owner = ensure_same_user(user, body.user_id)
    results = await bulk.apply_action(uow.session, owner, body.action, body.order_ids)
    await uow.commit()
    return bulk.BulkOrderResults(data=results)
