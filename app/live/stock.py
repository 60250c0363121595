"""Live and Messenger lines move stock through the inventory's own rows and rules: one
reservation row per (order, master SKU) holding the sum of the order's reserved lines, a
ledger entry for every unit reserved or given back, the counters updated under the SKU's row
lock (taken in id order, as app/inventory/reservations.py takes it), and pushes asked for
every SKU that moved, so the other channels show the new figure.

Unlike a marketplace order, a live order's holding changes while it is open (lines come,
go and wait), so its reservation row grows and shrinks instead of being written once."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.inventory import ledger
from app.inventory.requests import request_pushes
from app.inventory.rules import Balance

LOCK_TIMEOUT = "3s"
PLATFORM = "facebook"

_LOCK = text(
    "SELECT id, available, oversold, reserved FROM inventory_skus "
    "WHERE id = ANY(CAST(:ids AS bigint[])) ORDER BY id FOR NO KEY UPDATE"
)
_GROW = text(
    "INSERT INTO stock_reservations (master_sku_id, order_id, quantity) "
    "SELECT * FROM unnest(CAST(:skus AS bigint[]), CAST(:orders AS bigint[]), "
    "CAST(:quantities AS integer[])) "
    "ON CONFLICT (order_id, master_sku_id) DO UPDATE "
    "SET quantity = stock_reservations.quantity + EXCLUDED.quantity"
)
_SHRINK = text(
    "UPDATE stock_reservations r SET quantity = r.quantity - u.units "
    "FROM unnest(CAST(:skus AS bigint[]), CAST(:orders AS bigint[]), "
    "CAST(:quantities AS integer[])) AS u(master_sku_id, order_id, units) "
    "WHERE r.master_sku_id = u.master_sku_id AND r.order_id = u.order_id "
    "AND r.released_at IS NULL"
)
_OPEN_OF_ORDER = text(
    "SELECT master_sku_id FROM stock_reservations "
    "WHERE order_id = :order_id AND released_at IS NULL"
)
_RELEASE_ORDER = text(
    "UPDATE stock_reservations SET released_at = now() "
    "WHERE order_id = :order_id AND released_at IS NULL "
    "RETURNING master_sku_id, quantity"
)
_WRITE_COUNTERS = text(
    "UPDATE inventory_skus SET available = u.available, oversold = u.oversold, "
    "reserved = u.reserved, updated_at = now() "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:available AS integer[]), "
    "CAST(:oversold AS integer[]), CAST(:reserved AS integer[])) "
    "AS u(id, available, oversold, reserved) WHERE inventory_skus.id = u.id"
)
# Seller SKU on a connection -> master SKU, as the inventory resolves a marketplace line:
# the listing's link, else the master SKU of the same name.
_RESOLVE = text(
    "SELECT l.sku, m.master_sku_id, (m.id IS NOT NULL) AS has_mapping "
    "FROM marketplace_stock_levels l LEFT JOIN sku_mappings m ON m.listing_id = l.id "
    "WHERE l.connection_id = :connection_id AND l.sku = ANY(CAST(:skus AS text[]))"
)
_BY_NAME = text(
    "SELECT id, sku FROM inventory_skus WHERE user_id = :user_id "
    "AND sku = ANY(CAST(:skus AS text[]))"
)


@dataclass(slots=True)
class SkuState:
    balance: Balance
    reserved: int
    changed: bool = False

    @property
    def free(self) -> int:
        """Units that may still be reserved: never more than is on the shelf."""
        return max(0, self.balance.value)


@dataclass
class StockMoves:
    """Reservations changed under the locks of `locked_skus`, written by `write`."""

    states: dict[int, SkuState]
    connection_id: uuid.UUID
    _delta: dict[tuple[int, int], int] = field(default_factory=lambda: defaultdict(int))
    _entries: list[ledger.Entry] = field(default_factory=list)

    def reserve(self, order_id: int, master_sku_id: int, units: int, note: str) -> None:
        state = self.states[master_sku_id]
        if units <= 0:
            return
        if units > state.free:
            # The allocation computes from the same figures; reaching here is a bug.
            raise AssertionError(f"reserving {units} with {state.free} free")
        state.balance = Balance.of(state.balance.value - units)
        state.reserved += units
        state.changed = True
        self._delta[(order_id, master_sku_id)] += units
        self._entries.append(self._entry(master_sku_id, "reserve", units, order_id, note))

    def release(self, order_id: int, master_sku_id: int, units: int, note: str) -> None:
        if units <= 0:
            return
        state = self.states[master_sku_id]
        state.balance = Balance.of(state.balance.value + units)
        state.reserved = max(0, state.reserved - units)
        state.changed = True
        self._delta[(order_id, master_sku_id)] -= units
        self._entries.append(self._entry(master_sku_id, "release", units, order_id, note))

    def closed(self, order_id: int, master_sku_id: int, units: int, note: str) -> None:
        """Units given back by a reservation row closed by its own statement."""
        state = self.states[master_sku_id]
        state.balance = Balance.of(state.balance.value + units)
        state.reserved = max(0, state.reserved - units)
        state.changed = True
        if units:
            self._entries.append(self._entry(master_sku_id, "release", units, order_id, note))

    def _entry(
        self, master_sku_id: int, kind: str, units: int, order_id: int, note: str
    ) -> ledger.Entry:
        return ledger.Entry(
            master_sku_id,
            kind,
            units,
            self.states[master_sku_id].balance.available,
            order_id=order_id,
            connection_id=self.connection_id,
            platform_code=PLATFORM,
            message=note,
        )

    async def write(self, session: AsyncSession) -> None:
        grow = sorted((k, v) for k, v in self._delta.items() if v > 0)
        shrink = sorted((k, -v) for k, v in self._delta.items() if v < 0)
        for statement, moves in ((_GROW, grow), (_SHRINK, shrink)):
            if moves:
                await session.execute(
                    statement,
                    {
                        "skus": [master for (_, master), _ in moves],
                        "orders": [order for (order, _), _ in moves],
                        "quantities": [units for _, units in moves],
                    },
                )
        await _write_counters(session, self.states)
        await ledger.append(session, self._entries)
        moved = {e.master_sku_id for e in self._entries}
        self._delta.clear()
        self._entries = []
        await request_pushes(session, moved)


async def _write_counters(session: AsyncSession, states: dict[int, SkuState]) -> None:
    changed = sorted(i for i, s in states.items() if s.changed)
    if not changed:
        return
    await session.execute(
        _WRITE_COUNTERS,
        {
            "ids": changed,
            "available": [states[i].balance.available for i in changed],
            "oversold": [states[i].balance.oversold for i in changed],
            "reserved": [states[i].reserved for i in changed],
        },
    )
    for i in changed:
        states[i].changed = False


@asynccontextmanager
async def locked_skus(
    session: AsyncSession, master_sku_ids: Collection[int], connection_id: uuid.UUID
) -> AsyncIterator[StockMoves]:
    """Row locks on the master SKUs (id order, the order every stock writer uses), with the
    inventory's lock timeout: a stuck holder fails this event, which the webhook retries."""
    previous = await session.scalar(text("SELECT current_setting('lock_timeout')"))
    await session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    states: dict[int, SkuState] = {}
    if master_sku_ids:
        for row in await session.execute(_LOCK, {"ids": sorted(set(master_sku_ids))}):
            states[row.id] = SkuState(Balance(row.available, row.oversold), row.reserved)
    moves = StockMoves(states, connection_id)
    yield moves
    await moves.write(session)
    await session.execute(
        text("SELECT set_config('lock_timeout', :value, true)"), {"value": str(previous)}
    )


async def release_order(
    session: AsyncSession, order_id: int, connection_id: uuid.UUID, note: str
) -> set[int]:
    """Give back everything an order holds (its rows are closed, as a cancelled marketplace
    order's are); returns the master SKUs that moved."""
    rows = await session.execute(_OPEN_OF_ORDER, {"order_id": order_id})
    masters = {row.master_sku_id for row in rows}
    if not masters:
        return set()
    async with locked_skus(session, masters, connection_id) as moves:
        for row in await session.execute(_RELEASE_ORDER, {"order_id": order_id}):
            moves.closed(order_id, row.master_sku_id, row.quantity, note)
    return masters


async def resolve_skus(
    session: AsyncSession, connection_id: uuid.UUID, user_id: str, skus: Collection[str]
) -> dict[str, int]:
    """Seller SKUs (Messenger's `retailer_id`) -> master SKU ids."""
    resolved: dict[str, int] = {}
    decided: set[str] = set()
    wanted = sorted(set(skus))
    if not wanted:
        return resolved
    params = {"connection_id": connection_id, "skus": wanted}
    for row in await session.execute(_RESOLVE, params):
        if row.has_mapping:
            decided.add(row.sku)
            if row.master_sku_id is not None:
                resolved[row.sku] = row.master_sku_id
    rest = sorted(set(wanted) - decided)
    if rest:
        for row in await session.execute(_BY_NAME, {"user_id": user_id, "skus": rest}):
            resolved[row.sku] = row.id
    return resolved
