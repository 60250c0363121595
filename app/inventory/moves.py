"""The one stock mover: every reserve, release and commit of stock, from marketplace orders,
live comments, Messenger carts, cancellations, mark-paid, `PUT inventory` and links.

The reservation row, unique per (order, master SKU), is the truth: a marketplace order's row
is written once (ON CONFLICT DO NOTHING, so the second sighting of an order is a no-op) and
closed once on cancellation (only rows whose `released_at` is empty); a live or Messenger
order's row grows and shrinks while the order is open. Counters change only for what these
statements wrote, under a row lock per master SKU taken in id order (no deadlocks) with a
lock timeout, and every move is a ledger entry.

Units that come back (a release, a higher figure set) first serve the waiting lines of live
and Messenger orders, first come first served by comment time, then id, whatever released
them; then every SKU that moved asks for its pushes."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.inventory import ledger, low_stock
from app.inventory.requests import request_pushes
from app.inventory.rules import FULFILLED_STATUSES, RELEASING_STATUSES, Balance
from app.live.orders import settle_orders
from app.platforms.types import NormalizedOrder

# FOR NO KEY UPDATE: the counters are not keys, so ledger and reservation inserts (which
# take KEY SHARE through their foreign keys) from other transactions are not blocked.
# Long enough for a burst of orders for one SKU to queue up, short enough that a stuck
# holder fails the batch (which is retried) instead of stalling it.
LOCK_TIMEOUT = "3s"

_LOCK = text(
    "SELECT id, available, oversold, reserved, tracked_since, low_stock_at, "
    "low_stock_alerted_at IS NOT NULL AS low_stock_alerted FROM inventory_skus "
    "WHERE id = ANY(CAST(:ids AS bigint[])) ORDER BY id FOR NO KEY UPDATE"
)
_WRITE_COUNTERS = text(
    "UPDATE inventory_skus SET available = u.available, oversold = u.oversold, "
    "reserved = u.reserved, updated_at = now() "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:available AS integer[]), "
    "CAST(:oversold AS integer[]), CAST(:reserved AS integer[])) "
    "AS u(id, available, oversold, reserved) WHERE inventory_skus.id = u.id"
)
# Seller SKU on a connection -> master SKU: the listing's link, else the master SKU of the
# same name (a listing deliberately unlinked stays unlinked).
_RESOLVE = text(
    "SELECT l.sku, m.master_sku_id, (m.id IS NOT NULL) AS has_mapping "
    "FROM marketplace_stock_levels l LEFT JOIN sku_mappings m ON m.listing_id = l.id "
    "WHERE l.connection_id = :connection_id AND l.sku = ANY(CAST(:skus AS text[]))"
)
_BY_NAME = text(
    "SELECT id, sku FROM inventory_skus WHERE user_id = :user_id "
    "AND sku = ANY(CAST(:skus AS text[]))"
)
_OPEN_OF_ORDERS = text(
    "SELECT DISTINCT master_sku_id FROM stock_reservations "
    "WHERE order_id = ANY(CAST(:orders AS bigint[])) AND released_at IS NULL"
)
_CLOSE = text(
    "UPDATE stock_reservations SET released_at = now() "
    "WHERE order_id = ANY(CAST(:orders AS bigint[])) AND released_at IS NULL "
    "RETURNING master_sku_id, order_id, quantity, (fulfilled_at IS NOT NULL) AS fulfilled"
)
_RESERVE_ONCE = text(
    "INSERT INTO stock_reservations (master_sku_id, order_id, quantity) "
    "SELECT * FROM unnest(CAST(:skus AS bigint[]), CAST(:orders AS bigint[]), "
    "CAST(:quantities AS integer[])) "
    "ON CONFLICT (order_id, master_sku_id) DO NOTHING "
    "RETURNING id, master_sku_id, order_id, quantity"
)
_MARK_OVERSOLD = text(
    "UPDATE stock_reservations SET oversold_quantity = u.oversold "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:oversold AS integer[])) AS u(id, oversold) "
    "WHERE stock_reservations.id = u.id"
)
_FULFIL = text(
    "UPDATE stock_reservations SET fulfilled_at = now() "
    "WHERE order_id = ANY(CAST(:orders AS bigint[])) AND fulfilled_at IS NULL "
    "AND released_at IS NULL RETURNING master_sku_id, quantity"
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
# The waiting lines of live and Messenger orders (unpaid, active, asking for more than they
# hold) of these SKUs, in queue order; a live line also within its product's cap.
_WAITING = text(
    "SELECT l.id, l.order_id, l.master_sku_id, l.product_id, l.requested - l.reserved AS waiting, "
    "l.reserved, p.cap FROM social_order_lines l JOIN marketplace_orders o ON o.id = l.order_id "
    "LEFT JOIN live_session_products p ON p.id = l.product_id "
    "WHERE l.master_sku_id = ANY(CAST(:skus AS bigint[])) AND l.active "
    "AND l.requested > l.reserved AND o.status = 'unpaid' "
    "ORDER BY l.master_sku_id, l.sort_at, l.sort_key, l.id"
)
_PRODUCT_HELD = text(
    "SELECT product_id, COALESCE(sum(reserved), 0) AS held FROM social_order_lines "
    "WHERE product_id = ANY(CAST(:products AS bigint[])) AND reserved > 0 GROUP BY product_id"
)
_ADD_RESERVED = text(
    "UPDATE social_order_lines l SET reserved = l.reserved + u.units "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:units AS integer[])) AS u(id, units) "
    "WHERE l.id = u.id"
)
# Mark-paid commits what a social order holds: its waiting units leave the waiting list.
_COMMIT_LINES = text(
    "UPDATE social_order_lines SET requested = reserved, active = reserved > 0 "
    "WHERE order_id = :order_id AND active"
)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a `set` came from (a linked listing), for its ledger entry."""

    listing_id: int | None = None
    connection_id: uuid.UUID | None = None
    platform_code: str | None = None


@dataclass(slots=True)
class SkuState:
    balance: Balance
    reserved: int
    tracked_since: datetime
    changed: bool = False
    # Units came back (a release, a higher figure): the waiting lines are served first.
    returned: bool = False
    low_stock_at: int | None = None
    low_stock_alerted: bool = False

    @property
    def low_stock_changes(self) -> bool:
        """The figure crossed the low-stock threshold (either way) since the last alert."""
        return low_stock.is_low(self.balance.available, self.low_stock_at) != (
            self.low_stock_alerted
        )

    @property
    def free(self) -> int:
        """Units that may still be reserved without overselling."""
        return max(0, self.balance.value)


@dataclass
class StockMover:
    """Moves of stock under the row locks of `locked_skus`, written when the block ends."""

    states: dict[int, SkuState]
    connection_id: uuid.UUID | None
    platform_code: str | None
    _delta: dict[tuple[int, int], int] = field(default_factory=lambda: defaultdict(int))
    _entries: list[ledger.Entry] = field(default_factory=list)
    _settle: set[int] = field(default_factory=set)

    def _entry(
        self,
        master_sku_id: int,
        kind: str,
        units: int,
        order_id: int | None,
        note: str | None,
        *,
        oversold: bool = False,
        listing_id: int | None = None,
        connection_id: uuid.UUID | None = None,
        platform_code: str | None = None,
    ) -> None:
        self._entries.append(
            ledger.Entry(
                master_sku_id,
                kind,
                units,
                self.states[master_sku_id].balance.available,
                oversold=oversold,
                order_id=order_id,
                connection_id=connection_id or self.connection_id,
                listing_id=listing_id,
                platform_code=platform_code or self.platform_code,
                message=note,
            )
        )

    def _take(self, master_sku_id: int, units: int) -> int:
        """Units leave the shelf; returns how many of them were not there (oversold)."""
        state = self.states[master_sku_id]
        short = max(0, units - state.free)
        state.balance = Balance.of(state.balance.value - units)
        state.reserved += units
        state.changed = True
        return short

    def _give_back(self, master_sku_id: int, units: int, *, reserved: bool = True) -> None:
        state = self.states[master_sku_id]
        state.balance = Balance.of(state.balance.value + units)
        if reserved:
            state.reserved = max(0, state.reserved - units)
        state.changed = True
        state.returned = state.returned or units > 0

    def reserve(self, order_id: int, master_sku_id: int, units: int, note: str) -> None:
        """A live or Messenger order holds `units` more (never beyond what is free)."""
        if units <= 0:
            return
        if units > self.states[master_sku_id].free:
            # Callers compute from the same figures; reaching here is a bug.
            raise AssertionError(f"reserving {units} with {self.states[master_sku_id].free} free")
        self._take(master_sku_id, units)
        self._delta[(order_id, master_sku_id)] += units
        self._entry(master_sku_id, "reserve", units, order_id, note)

    def release(self, order_id: int, master_sku_id: int, units: int, note: str) -> None:
        """A live or Messenger order holds `units` fewer."""
        if units <= 0:
            return
        self._give_back(master_sku_id, units)
        self._delta[(order_id, master_sku_id)] -= units
        self._entry(master_sku_id, "release", units, order_id, note)

    def reserved_row(self, row_id: int, order_id: int, master_sku_id: int, units: int) -> int:
        """A marketplace order's row just inserted: the platform sold it, so it may oversell.
        Returns the units oversold."""
        short = self._take(master_sku_id, units)
        note = f"oversold by {short}" if short else None
        self._entry(master_sku_id, "reserve", units, order_id, note, oversold=short > 0)
        return short

    def closed(
        self, order_id: int, master_sku_id: int, units: int, note: str, *, held: bool
    ) -> None:
        """Units given back by a reservation row its own statement closed (`held`: not yet
        shipped, so they also leave `reserved`)."""
        self._give_back(master_sku_id, units, reserved=held)
        if units:
            self._entry(master_sku_id, "release", units, order_id, note)

    def fulfilled(self, master_sku_id: int, units: int) -> None:
        """Shipped: no longer reserved, still sold (no ledger entry: the figure is unchanged)."""
        state = self.states[master_sku_id]
        state.reserved = max(0, state.reserved - units)
        state.changed = True

    def set_figure(
        self, master_sku_id: int, value: int, note: str, origin: Origin | None = None
    ) -> None:
        """The master SKU's balance is `value` from now on (a ledger `set`)."""
        state = self.states[master_sku_id]
        if value > state.balance.value:
            state.returned = True
        state.balance = Balance.of(value)
        state.changed = True
        origin = origin or Origin()
        self._entry(
            master_sku_id,
            "set",
            value,
            None,
            note,
            listing_id=origin.listing_id,
            connection_id=origin.connection_id,
            platform_code=origin.platform_code,
        )

    def settle(self, order_ids: Collection[int]) -> None:
        """Social orders whose lines moved: their items, totals and replies when done."""
        self._settle |= set(order_ids)

    async def _serve_waiting(self, session: AsyncSession) -> None:
        returned = sorted(i for i, s in self.states.items() if s.returned and s.free > 0)
        if not returned:
            return
        rows = (await session.execute(_WAITING, {"skus": returned})).all()
        if not rows:
            return
        products = sorted({r.product_id for r in rows if r.product_id is not None})
        held: dict[int, int] = {}
        if products:
            for row in await session.execute(_PRODUCT_HELD, {"products": products}):
                held[row.product_id] = int(row.held)
        given: list[tuple[int, int]] = []
        for row in rows:
            free = self.states[row.master_sku_id].free
            room = free
            if row.product_id is not None and row.cap is not None:
                room = min(room, row.cap - held.get(row.product_id, 0))
            units = min(int(row.waiting), max(0, room))
            if units <= 0:
                continue
            if row.product_id is not None:
                held[row.product_id] = held.get(row.product_id, 0) + units
            self.reserve(row.order_id, row.master_sku_id, units, "waiting line served")
            given.append((row.id, units))
            self._settle.add(row.order_id)
        if given:
            await session.execute(
                _ADD_RESERVED, {"ids": [i for i, _ in given], "units": [u for _, u in given]}
            )

    async def write(self, session: AsyncSession) -> None:
        await self._serve_waiting(session)
        for state in self.states.values():
            state.returned = False
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
        changed = sorted(i for i, s in self.states.items() if s.changed)
        if changed:
            await session.execute(
                _WRITE_COUNTERS,
                {
                    "ids": changed,
                    "available": [self.states[i].balance.available for i in changed],
                    "oversold": [self.states[i].balance.oversold for i in changed],
                    "reserved": [self.states[i].reserved for i in changed],
                },
            )
            for i in changed:
                self.states[i].changed = False
            crossed = [i for i in changed if self.states[i].low_stock_changes]
            if crossed:
                await low_stock.evaluate(session, crossed)
                for i in crossed:
                    state = self.states[i]
                    state.low_stock_alerted = low_stock.is_low(
                        state.balance.available, state.low_stock_at
                    )
        await ledger.append(session, self._entries)
        moved = {e.master_sku_id for e in self._entries}
        self._delta.clear()
        self._entries = []
        await request_pushes(session, moved)
        settle, self._settle = sorted(self._settle), set()
        if settle:
            await settle_orders(session, settle)


@asynccontextmanager
async def bounded_lock_wait(session: AsyncSession) -> AsyncIterator[None]:
    """Lock waits in the block end after LOCK_TIMEOUT (a lock-not-available error) instead of
    stalling; the transaction's own setting comes back after it."""
    previous = await session.scalar(text("SELECT current_setting('lock_timeout')"))
    await session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    yield
    await session.execute(
        text("SELECT set_config('lock_timeout', :value, true)"), {"value": str(previous)}
    )


@asynccontextmanager
async def locked_skus(
    session: AsyncSession,
    master_sku_ids: Collection[int],
    *,
    connection_id: uuid.UUID | None = None,
    platform_code: str | None = None,
) -> AsyncIterator[StockMover]:
    """Row locks on the master SKUs (id order, the order every stock writer uses), with the
    lock timeout; the moves made in the block are written when it ends."""
    async with bounded_lock_wait(session):
        states: dict[int, SkuState] = {}
        if master_sku_ids:
            for row in await session.execute(_LOCK, {"ids": sorted(set(master_sku_ids))}):
                states[row.id] = SkuState(
                    Balance(row.available, row.oversold),
                    row.reserved,
                    row.tracked_since,
                    low_stock_at=row.low_stock_at,
                    low_stock_alerted=row.low_stock_alerted,
                )
        mover = StockMover(states, connection_id, platform_code)
        yield mover
        await mover.write(session)


async def resolve_skus(
    session: AsyncSession, connection_id: uuid.UUID, user_id: str, skus: Collection[str]
) -> dict[str, int]:
    """Seller SKUs on this connection (a line's SKU, Messenger's `retailer_id`) -> master SKU
    ids: the listing's link, else the master SKU of the same name."""
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


async def apply_orders(
    session: AsyncSession,
    written: Sequence[tuple[int, NormalizedOrder]],
    *,
    connection_id: uuid.UUID,
    user_id: str,
    platform_code: str,
) -> None:
    """Marketplace orders just written, as (order row id, order): reserve, fulfil or release
    (called by `upsert_orders` in the order's own transaction)."""
    lines: dict[int, dict[str, int]] = {}
    for order_id, order in written:
        per_sku: dict[str, int] = defaultdict(int)
        for item in order.items:
            if item.sku and item.quantity > 0:
                per_sku[item.sku] += item.quantity
        lines[order_id] = per_sku
    all_skus = {sku for per_sku in lines.values() for sku in per_sku}
    releasing = [oid for oid, o in written if o.status.value in RELEASING_STATUSES]
    resolved = await resolve_skus(session, connection_id, user_id, all_skus)
    wanted: dict[tuple[int, int], int] = defaultdict(int)  # (order id, master id) -> units
    for order_id, order in written:
        if order.status.value in RELEASING_STATUSES:
            continue
        for sku, quantity in lines[order_id].items():
            master = resolved.get(sku)
            if master is not None:
                wanted[(order_id, master)] += quantity
    lock_ids = {master for _, master in wanted}
    if releasing:
        rows = await session.execute(_OPEN_OF_ORDERS, {"orders": releasing})
        lock_ids |= {row.master_sku_id for row in rows}
    if not lock_ids:
        return
    created = {oid: o.created_at for oid, o in written}
    async with locked_skus(
        session, lock_ids, connection_id=connection_id, platform_code=platform_code
    ) as mover:
        if releasing:
            for row in await session.execute(_CLOSE, {"orders": releasing}):
                mover.closed(
                    row.order_id,
                    row.master_sku_id,
                    row.quantity,
                    "order cancelled, returned or failed",
                    held=not row.fulfilled,
                )
        # Orders older than the SKU's tracking are already counted in the figure it started from.
        # Marketplaces stamp orders in whole seconds: one placed in the second tracking began
        # is newer than the figure, so it reserves (never a sale missed and oversold).
        new = sorted(
            (key, units)
            for key, units in wanted.items()
            if key[1] in mover.states
            and created[key[0]] >= mover.states[key[1]].tracked_since.replace(microsecond=0)
        )
        if new:
            params = {
                "skus": [master for (_, master), _ in new],
                "orders": [order for (order, _), _ in new],
                "quantities": [units for _, units in new],
            }
            inserted = (await session.execute(_RESERVE_ONCE, params)).all()
            oversold_ids, oversold_units = [], []
            for row in sorted(inserted, key=lambda r: (r.order_id, r.master_sku_id)):
                short = mover.reserved_row(row.id, row.order_id, row.master_sku_id, row.quantity)
                if short:
                    oversold_ids.append(row.id)
                    oversold_units.append(short)
            if oversold_ids:
                await session.execute(
                    _MARK_OVERSOLD, {"ids": oversold_ids, "oversold": oversold_units}
                )
        fulfilled = [oid for oid, o in written if o.status.value in FULFILLED_STATUSES]
        if fulfilled:
            for row in await session.execute(_FULFIL, {"orders": fulfilled}):
                mover.fulfilled(row.master_sku_id, row.quantity)


async def release_order(
    session: AsyncSession, order_id: int, connection_id: uuid.UUID, note: str
) -> set[int]:
    """Give back everything an order holds (its rows are closed, as a cancelled marketplace
    order's are); the units serve the waiting lines first. Returns the SKUs that moved."""
    rows = await session.execute(_OPEN_OF_ORDERS, {"orders": [order_id]})
    masters = {row.master_sku_id for row in rows}
    if not masters:
        return set()
    async with locked_skus(
        session, masters, connection_id=connection_id, platform_code="facebook"
    ) as mover:
        for row in await session.execute(_CLOSE, {"orders": [order_id]}):
            mover.closed(order_id, row.master_sku_id, row.quantity, note, held=not row.fulfilled)
    return masters


async def commit_order(session: AsyncSession, order_id: int) -> None:
    """Mark-paid: what a live or Messenger order holds is its own for good (it leaves the
    queue's reallocation) and its waiting units leave the waiting list. The units stay
    reserved until shipped, so no counter moves."""
    await session.execute(_COMMIT_LINES, {"order_id": order_id})


async def set_figure(
    session: AsyncSession, master_sku_id: int, value: int, note: str, origin: Origin | None = None
) -> None:
    """`PUT inventory` and links: the master SKU's balance becomes `value` (a ledger `set`);
    units it gains serve the waiting lines first, and its listings are told."""
    await set_figures(session, {master_sku_id: value}, note, origin)


async def set_figures(
    session: AsyncSession,
    figures: Mapping[int, int],
    note: str,
    origin: Origin | None = None,
) -> None:
    """`set_figure` for many master SKUs at once (a bulk change): one lock round, one write."""
    async with locked_skus(session, figures) as mover:
        for master_sku_id, value in sorted(figures.items()):
            mover.set_figure(master_sku_id, value, note, origin)
