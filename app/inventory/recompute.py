"""The nightly check: counters are a cache, the ledger and the reservation rows the truth.

Per master SKU (under its row lock): the balance is the last `set` plus the releases minus
the reservations recorded after it (ledger ids are taken under the lock, so their order is
the order things happened); `reserved` is the open, unshipped reservation rows. Counters
that disagree are reported and corrected."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.inventory import low_stock
from app.inventory.rules import Balance

logger = logging.getLogger("app.inventory.recompute")

BATCH = 500

_DERIVED = text(
    "WITH batch AS (SELECT id, user_id, sku, available, oversold, reserved FROM inventory_skus "
    "WHERE id > :after ORDER BY id LIMIT :limit FOR UPDATE), "
    "last_set AS (SELECT DISTINCT ON (master_sku_id) master_sku_id, id, quantity "
    "FROM stock_ledger WHERE kind = 'set' AND master_sku_id IN (SELECT id FROM batch) "
    "ORDER BY master_sku_id, id DESC), "
    "moves AS (SELECT e.master_sku_id, "
    "COALESCE(SUM(CASE WHEN e.kind = 'release' THEN e.quantity "
    "WHEN e.kind = 'reserve' THEN -e.quantity ELSE 0 END), 0) AS delta "
    "FROM stock_ledger e LEFT JOIN last_set s ON s.master_sku_id = e.master_sku_id "
    "WHERE e.master_sku_id IN (SELECT id FROM batch) AND e.id > COALESCE(s.id, 0) "
    "GROUP BY e.master_sku_id), "
    "held AS (SELECT master_sku_id, SUM(quantity) AS reserved FROM stock_reservations "
    "WHERE master_sku_id IN (SELECT id FROM batch) AND released_at IS NULL "
    "AND fulfilled_at IS NULL GROUP BY master_sku_id) "
    "SELECT b.id, b.user_id, b.sku, b.available, b.oversold, b.reserved AS stored_reserved, "
    "COALESCE(s.quantity, 0) + COALESCE(m.delta, 0) AS balance, "
    "COALESCE(h.reserved, 0) AS reserved FROM batch b "
    "LEFT JOIN last_set s ON s.master_sku_id = b.id LEFT JOIN moves m ON m.master_sku_id = b.id "
    "LEFT JOIN held h ON h.master_sku_id = b.id ORDER BY b.id"
)
_FIX = text(
    "UPDATE inventory_skus SET available = :available, oversold = :oversold, "
    "reserved = :reserved, updated_at = now() WHERE id = :id"
)


@dataclass(slots=True)
class Drift:
    user_id: str
    sku: str
    stored: dict[str, int]
    derived: dict[str, int]

    def as_dict(self) -> dict[str, object]:
        return {
            "userId": self.user_id,
            "sku": self.sku,
            "stored": self.stored,
            "derived": self.derived,
        }


async def _batch(session: AsyncSession, after: int) -> tuple[list[Drift], int | None]:
    rows = (await session.execute(_DERIVED, {"after": after, "limit": BATCH})).all()
    drifts = []
    corrected: list[int] = []
    for row in rows:
        balance = Balance.of(int(row.balance))
        derived = {
            "available": balance.available,
            "oversold": balance.oversold,
            "reserved": int(row.reserved),
        }
        stored = {
            "available": row.available,
            "oversold": row.oversold,
            "reserved": row.stored_reserved,
        }
        if derived != stored:
            drifts.append(Drift(row.user_id, row.sku, stored, derived))
            await session.execute(_FIX, {"id": row.id, **derived})
            corrected.append(row.id)
    # A corrected figure may cross a low-stock threshold like any move.
    await low_stock.evaluate(session, corrected)
    return drifts, (rows[-1].id if len(rows) == BATCH else None)


async def recompute_counters(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> list[dict[str, object]]:
    """Recompute every master SKU's counters; returns (and logs) the drift found and fixed."""
    report: list[Drift] = []
    after: int | None = 0
    while after is not None:
        async with sessionmaker() as session:
            drifts, after = await _batch(session, after)
            await session.commit()
        report += drifts
    for drift in report:
        logger.warning("stock counters drifted; corrected", extra=drift.as_dict())
    return [d.as_dict() for d in report]
