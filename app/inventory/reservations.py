"""Orders move stock exactly once: called by `upsert_orders` in the order's own transaction.

The reservation row, unique per (order, master SKU), is the truth: inserting it with
ON CONFLICT DO NOTHING is what makes the second sighting of an order (sync after webhook,
reconcile) a no-op, and releasing only rows whose `released_at` is empty is what makes a
cancellation give its units back once. Counters change only for rows these statements
actually wrote, under a row lock per master SKU taken in id order (no deadlocks)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.inventory import ledger
from app.inventory.requests import request_pushes
from app.inventory.rules import FULFILLED_STATUSES, RELEASING_STATUSES, Balance
from app.platforms.types import NormalizedOrder

# FOR NO KEY UPDATE: the counters are not keys, so ledger and reservation inserts (which
# take KEY SHARE through their foreign keys) from other transactions are not blocked.
# Long enough for a burst of orders for one SKU to queue up, short enough that a stuck
# holder fails the batch (which is retried) instead of stalling the sync.
LOCK_TIMEOUT = "3s"

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
_LOCK = text(
    "SELECT id, available, oversold, reserved, tracked_since FROM inventory_skus "
    "WHERE id = ANY(CAST(:ids AS bigint[])) ORDER BY id FOR NO KEY UPDATE"
)
_RELEASE = text(
    "UPDATE stock_reservations SET released_at = now() "
    "WHERE order_id = ANY(CAST(:orders AS bigint[])) AND released_at IS NULL "
    "RETURNING master_sku_id, order_id, quantity, (fulfilled_at IS NOT NULL) AS fulfilled"
)
_RESERVE = text(
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
_WRITE_COUNTERS = text(
    "UPDATE inventory_skus SET available = u.available, oversold = u.oversold, "
    "reserved = u.reserved, updated_at = now() "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:available AS integer[]), "
    "CAST(:oversold AS integer[]), CAST(:reserved AS integer[])) "
    "AS u(id, available, oversold, reserved) WHERE inventory_skus.id = u.id"
)


@dataclass(slots=True)
class _Counters:
    balance: Balance
    reserved: int
    changed: bool = False


async def _resolve(
    session: AsyncSession, connection_id: uuid.UUID, user_id: str, skus: set[str]
) -> dict[str, int]:
    """Seller SKU on this connection -> master SKU id: the listing's link, else the master
    SKU of the same name (a listing deliberately unlinked stays unlinked)."""
    resolved: dict[str, int] = {}
    decided: set[str] = set()
    params = {"connection_id": connection_id, "skus": sorted(skus)}
    for row in await session.execute(_RESOLVE, params):
        if row.has_mapping:
            decided.add(row.sku)
            if row.master_sku_id is not None:
                resolved[row.sku] = row.master_sku_id
    rest = sorted(skus - decided)
    if rest:
        for row in await session.execute(_BY_NAME, {"user_id": user_id, "skus": rest}):
            resolved[row.sku] = row.id
    return resolved


async def _with_lock_timeout(session: AsyncSession) -> str:
    previous = await session.scalar(text("SELECT current_setting('lock_timeout')"))
    await session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    return str(previous)


async def apply_orders(
    session: AsyncSession,
    written: Sequence[tuple[int, NormalizedOrder]],
    *,
    connection_id: uuid.UUID,
    user_id: str,
    platform_code: str,
) -> None:
    """Reserve, fulfil or release stock for orders just written, as (order row id, order)."""
    lines: dict[int, dict[str, int]] = {}
    for order_id, order in written:
        per_sku: dict[str, int] = defaultdict(int)
        for item in order.items:
            if item.sku and item.quantity > 0:
                per_sku[item.sku] += item.quantity
        lines[order_id] = per_sku
    all_skus = {sku for per_sku in lines.values() for sku in per_sku}
    releasing = [oid for oid, o in written if o.status.value in RELEASING_STATUSES]
    resolved = await _resolve(session, connection_id, user_id, all_skus) if all_skus else {}
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
    previous_timeout = await _with_lock_timeout(session)
    counters: dict[int, _Counters] = {}
    tracked_since = {}
    for row in await session.execute(_LOCK, {"ids": sorted(lock_ids)}):
        counters[row.id] = _Counters(Balance(row.available, row.oversold), row.reserved)
        tracked_since[row.id] = row.tracked_since
    entries: list[ledger.Entry] = []
    created = {oid: o.created_at for oid, o in written}

    if releasing:
        for row in await session.execute(_RELEASE, {"orders": releasing}):
            state = counters[row.master_sku_id]
            state.balance = Balance.of(state.balance.value + row.quantity)
            if not row.fulfilled:
                state.reserved = max(0, state.reserved - row.quantity)
            state.changed = True
            entries.append(
                ledger.Entry(
                    row.master_sku_id,
                    "release",
                    row.quantity,
                    state.balance.available,
                    order_id=row.order_id,
                    connection_id=connection_id,
                    platform_code=platform_code,
                    message="order cancelled, returned or failed",
                )
            )

    # Orders older than the SKU's tracking are already counted in the figure it started from.
    new = sorted(
        (key, units)
        for key, units in wanted.items()
        if key[1] in counters and created[key[0]] >= tracked_since[key[1]]
    )
    if new:
        params = {
            "skus": [master for (_, master), _ in new],
            "orders": [order for (order, _), _ in new],
            "quantities": [units for _, units in new],
        }
        inserted = (await session.execute(_RESERVE, params)).all()
        oversold_ids, oversold_units = [], []
        for row in sorted(inserted, key=lambda r: (r.order_id, r.master_sku_id)):
            state = counters[row.master_sku_id]
            short = max(0, row.quantity - state.balance.available)
            state.balance = Balance.of(state.balance.value - row.quantity)
            state.reserved += row.quantity
            state.changed = True
            if short:
                oversold_ids.append(row.id)
                oversold_units.append(short)
            entries.append(
                ledger.Entry(
                    row.master_sku_id,
                    "reserve",
                    row.quantity,
                    state.balance.available,
                    oversold=short > 0,
                    order_id=row.order_id,
                    connection_id=connection_id,
                    platform_code=platform_code,
                    message=f"oversold by {short}" if short else None,
                )
            )
        if oversold_ids:
            await session.execute(_MARK_OVERSOLD, {"ids": oversold_ids, "oversold": oversold_units})

    fulfilled = [oid for oid, o in written if o.status.value in FULFILLED_STATUSES]
    if fulfilled:
        for row in await session.execute(_FULFIL, {"orders": fulfilled}):
            state = counters[row.master_sku_id]
            state.reserved = max(0, state.reserved - row.quantity)
            state.changed = True

    changed = {mid: c for mid, c in counters.items() if c.changed}
    if changed:
        ids = sorted(changed)
        await session.execute(
            _WRITE_COUNTERS,
            {
                "ids": ids,
                "available": [changed[i].balance.available for i in ids],
                "oversold": [changed[i].balance.oversold for i in ids],
                "reserved": [changed[i].reserved for i in ids],
            },
        )
        await ledger.append(session, entries)
        moved = {e.master_sku_id for e in entries}
        await request_pushes(session, moved)
    await session.execute(
        text("SELECT set_config('lock_timeout', :value, true)"), {"value": previous_timeout}
    )
