"""Low-stock alerts: a master SKU whose `available` reaches its `lowStockAt` (at or below)
raises one signed `inventory.low_stock` alert through the alert outbox, and is armed again
only once the figure has recovered above the threshold.

The fired state is `inventory_skus.low_stock_alerted_at`, written in the transaction of the
move that crossed the threshold and under the SKU's row lock (every stock writer holds it), so
concurrent moves see each other's state and raise the alert once. The stock mover asks only
for the SKUs whose state changes (it loads the threshold with its lock), which keeps the
sale path free of an extra statement for SKUs without a threshold."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts.service import AlertType, raise_alert

# Only transitions are written: an SKU whose fired state already matches its figure is left
# alone. `fired` is true for the ones that just went low (false: recovered, or no threshold).
_EVALUATE = text(
    "WITH old AS (SELECT id, low_stock_alerted_at IS NOT NULL AS was FROM inventory_skus "
    "WHERE id = ANY(CAST(:ids AS bigint[])) ORDER BY id FOR NO KEY UPDATE) "
    "UPDATE inventory_skus AS s SET low_stock_alerted_at = CASE "
    "WHEN s.low_stock_at IS NOT NULL AND s.available <= s.low_stock_at "
    "THEN clock_timestamp() END "
    "FROM old WHERE s.id = old.id "
    "AND old.was IS DISTINCT FROM (s.low_stock_at IS NOT NULL AND s.available <= s.low_stock_at) "
    "RETURNING s.id, s.user_id, s.sku, s.available, s.low_stock_at, s.low_stock_alerted_at, "
    "NOT old.was AS fired"
)


def is_low(available: int, low_stock_at: int | None) -> bool:
    return low_stock_at is not None and available <= low_stock_at


async def evaluate(session: AsyncSession, master_sku_ids: Collection[int]) -> int:
    """After a move (or a new threshold) of these master SKUs, in its transaction: fire the
    alert of those that went low, re-arm those that recovered. Returns the alerts raised."""
    if not master_sku_ids:
        return 0
    raised = 0
    for row in await session.execute(_EVALUATE, {"ids": sorted(set(master_sku_ids))}):
        if not row.fired:
            continue
        await raise_alert(
            session,
            type=AlertType.LOW_STOCK,
            connection_id=None,
            platform_code=None,
            message=(
                f"{row.sku} is low on stock: {row.available} available "
                f"(the alert is set at {row.low_stock_at} or fewer)"
            ),
            dedupe_key=f"{AlertType.LOW_STOCK}:{row.id}:{row.low_stock_alerted_at.isoformat()}",
            details={
                "userId": row.user_id,
                "sku": row.sku,
                "available": row.available,
                "lowStockAt": row.low_stock_at,
            },
        )
        raised += 1
    return raised
