"""The inventory API: master SKUs with their listings, setting figures and rules, links, and
the ledger. Writes lock the master SKU row, as reservations do."""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from collections.abc import Mapping

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFoundError
from app.inventory import low_stock, moves
from app.inventory.requests import request_listing_pushes, request_pushes
from app.inventory.rules import sellable_quantity
from app.inventory.schemas import (
    CursorPagination,
    InventoryListing,
    InventoryPage,
    InventoryRow,
    InventoryUpdate,
    LedgerEntryOut,
    LedgerKind,
    LedgerPage,
    PushStatus,
    SkuMappingUpdate,
)
from app.models import InventorySku, MarketplaceStockLevel, SkuMapping, StockLedgerEntry
from app.orders.service import invalid
from app.uow import UnitOfWork


def _encode(key: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([1, key]).encode()).decode().rstrip("=")


def _decode(cursor: str) -> int:
    try:
        version, key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if version != 1 or type(key) is not int or not 0 <= key < 2**63:
            raise ValueError("bad cursor")
    except (ValueError, TypeError) as exc:
        raise invalid("cursor", "Malformed cursor; pass nextCursor from a previous page") from exc
    return int(key)


async def _rows(session: AsyncSession, masters: list[InventorySku]) -> list[InventoryRow]:
    listings: dict[int, list[InventoryListing]] = defaultdict(list)
    if masters:
        found = await session.execute(
            select(SkuMapping.master_sku_id, MarketplaceStockLevel)
            .join(MarketplaceStockLevel, MarketplaceStockLevel.id == SkuMapping.listing_id)
            .where(SkuMapping.master_sku_id.in_([m.id for m in masters]))
            .order_by(MarketplaceStockLevel.id)
        )
        for master_id, listing in found:
            assert master_id is not None
            listings[master_id].append(
                InventoryListing(
                    listing_id=listing.id,
                    connection_id=listing.connection_id,
                    platform_code=listing.platform_code,
                    platform_stock=listing.quantity,
                    pushed_stock=listing.pushed_stock,
                    push_status=PushStatus(listing.push_status),
                    last_push_at=listing.last_push_at,
                    message=listing.push_message,
                )
            )
    return [
        InventoryRow(
            sku=m.sku,
            available=m.available,
            reserved=m.reserved,
            oversold=m.oversold,
            buffer=m.buffer,
            zero_below=m.zero_below,
            max_quantity=m.max_quantity,
            low_stock_at=m.low_stock_at,
            sellable=sellable_quantity(m.available, m.buffer, m.zero_below, m.max_quantity),
            listings=listings[m.id],
        )
        for m in masters
    ]


async def _master(
    session: AsyncSession, user_id: str, sku: str, *, for_update: bool = False
) -> InventorySku:
    query = select(InventorySku).where(InventorySku.user_id == user_id, InventorySku.sku == sku)
    master = await session.scalar(query.with_for_update(key_share=True) if for_update else query)
    if master is None:
        raise NotFoundError("Master SKU not found")
    return master


async def list_inventory(
    session: AsyncSession, user_id: str, *, q: str | None, limit: int, cursor: str | None
) -> InventoryPage:
    query = select(InventorySku).where(InventorySku.user_id == user_id)
    if q:
        escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(InventorySku.sku.ilike(f"%{escaped}%"))
    if cursor is not None:
        query = query.where(InventorySku.id > _decode(cursor))
    masters = list((await session.scalars(query.order_by(InventorySku.id).limit(limit + 1))).all())
    more = len(masters) > limit
    masters = masters[:limit]
    return InventoryPage(
        data=await _rows(session, masters),
        pagination=CursorPagination(
            limit=limit, next_cursor=_encode(masters[-1].id) if more and masters else None
        ),
    )


async def get_inventory(session: AsyncSession, user_id: str, sku: str) -> InventoryRow:
    return (await _rows(session, [await _master(session, user_id, sku)]))[0]


RULES = ("buffer", "zero_below", "max_quantity", "low_stock_at")


async def update_inventory(
    uow: UnitOfWork, user_id: str, sku: str, body: InventoryUpdate
) -> InventoryRow:
    given = body.model_fields_set
    if "available" in given and body.available is None:
        raise invalid("available", "available cannot be removed; send a number")
    changes = {name: getattr(body, name) for name in (*RULES, "available") if name in given}
    masters = await apply_inventory_updates(uow.session, user_id, {sku: changes})
    return (await _rows(uow.session, [masters[sku]]))[0]


_CREATE_MASTERS = text(
    "INSERT INTO inventory_skus (user_id, sku, available) "
    "SELECT :user_id, s, 0 FROM unnest(CAST(:skus AS text[])) AS s "
    "ON CONFLICT (user_id, sku) DO NOTHING"
)


async def apply_inventory_updates(
    session: AsyncSession, user_id: str, changes: Mapping[str, Mapping[str, int | None]]
) -> dict[str, InventorySku]:
    """Set master SKUs' figures and/or rules (created when new), per SKU the fields given
    (`None` removing a rule; `available`, when given, a number): `PUT inventory/{sku}` with
    one, the bulk with many. The SKUs are locked in id order, as every stock writer locks
    them; the figures go through the stock mover (ledger, waiting lines, pushes, low-stock
    alert). Returns the master SKUs, reloaded."""
    skus = sorted(changes)
    async with moves.bounded_lock_wait(session):
        await session.execute(_CREATE_MASTERS, {"user_id": user_id, "skus": skus})
        masters = {
            m.sku: m
            for m in await session.scalars(
                select(InventorySku)
                .where(InventorySku.user_id == user_id, InventorySku.sku.in_(skus))
                .order_by(InventorySku.id)
                .with_for_update(key_share=True)
                .execution_options(populate_existing=True)
            )
        }
    figures: dict[int, int] = {}
    rules_only: list[int] = []
    thresholds: list[int] = []
    for sku, given in changes.items():
        master = masters[sku]
        for name in RULES:
            if name in given:
                setattr(master, name, given[name])
        available = given.get("available")
        if available is not None:
            master.seller_set = True
            figures[master.id] = available
        else:
            rules_only.append(master.id)
            if "low_stock_at" in given:
                thresholds.append(master.id)
    await session.flush()
    if figures:
        # Through the stock mover: units added serve the waiting lines first.
        await moves.set_figures(session, figures, "set")
    await request_pushes(session, rules_only)  # new rules, the same figure
    await low_stock.evaluate(session, thresholds)
    if figures:
        reloaded = await session.scalars(
            select(InventorySku)
            .where(InventorySku.id.in_(sorted(figures)))
            .execution_options(populate_existing=True)
        )
        reloaded.all()
    return masters


async def update_mapping(uow: UnitOfWork, user_id: str, body: SkuMappingUpdate) -> int:
    """Link (or with `masterSku: null` unlink) a listing; a manual row outlives product syncs.
    Returns the listing id."""
    return await update_mapping_in(uow.session, user_id, body)


async def update_mapping_in(session: AsyncSession, user_id: str, body: SkuMappingUpdate) -> int:
    listing = await session.scalar(
        select(MarketplaceStockLevel).where(
            MarketplaceStockLevel.id == body.listing_id, MarketplaceStockLevel.user_id == user_id
        )
    )
    if listing is None:
        raise NotFoundError("Listing not found")
    master_id: int | None = None
    if body.master_sku is not None:
        await session.execute(
            insert(InventorySku)
            .values(user_id=user_id, sku=body.master_sku, available=0)
            .on_conflict_do_nothing(index_elements=["user_id", "sku"])
        )
        master = await _master(session, user_id, body.master_sku, for_update=True)
        master_id = master.id
        others = await session.scalar(
            select(SkuMapping.id).where(
                SkuMapping.master_sku_id == master.id, SkuMapping.listing_id != listing.id
            )
        )
        # A listing the seller already linked by hand shows the figure we pushed for that
        # master SKU, not stock of the shop's own: moved to another, it lowers nothing there.
        pushed_by_us = await session.scalar(
            select(SkuMapping.id).where(
                SkuMapping.listing_id == listing.id,
                SkuMapping.master_sku_id.is_not(None),
                SkuMapping.source == "manual",
            )
        )
        stock = max(0, listing.quantity or 0)
        value = master.available - master.oversold
        # A master SKU the seller never set starts from (or drops to) its listings' lowest.
        lowers = not master.seller_set and (
            others is None or (stock < value and pushed_by_us is None)
        )
        if lowers or value >= 0:
            # The link is in the ledger, as the figure it leaves (a `set` the recompute and
            # the counters agree on); an oversold figure left as it is cannot be a `set`.
            await session.flush()
            await moves.set_figure(
                session,
                master.id,
                stock if lowers else value,
                "lowest stock of the listings linked by hand"
                if lowers
                else f"listing {listing.id} linked; the figure is unchanged",
                moves.Origin(listing.id, listing.connection_id, listing.platform_code),
            )
            await session.refresh(master)
    statement = insert(SkuMapping).values(
        user_id=user_id, listing_id=listing.id, master_sku_id=master_id, source="manual"
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["listing_id"],
            set_={"master_sku_id": statement.excluded.master_sku_id, "source": "manual"},
        )
    )
    if master_id is not None:
        await request_listing_pushes(session, [listing.id])
    else:
        listing.push_status = PushStatus.OK
        listing.push_message = None
    await session.flush()
    return listing.id


async def ledger_page(
    session: AsyncSession, user_id: str, sku: str, *, limit: int, cursor: str | None
) -> LedgerPage:
    master = await _master(session, user_id, sku)
    query = select(StockLedgerEntry).where(StockLedgerEntry.master_sku_id == master.id)
    if cursor is not None:
        query = query.where(StockLedgerEntry.id > _decode(cursor))
    entries = list(
        (await session.scalars(query.order_by(StockLedgerEntry.id).limit(limit + 1))).all()
    )
    more = len(entries) > limit
    entries = entries[:limit]
    return LedgerPage(
        data=[
            LedgerEntryOut(
                id=e.id,
                kind=LedgerKind(e.kind),
                at=e.at,
                quantity=e.quantity,
                available_after=e.available_after,
                oversold=e.oversold,
                order_id=e.order_id,
                connection_id=e.connection_id,
                listing_id=e.listing_id,
                platform_code=e.platform_code,
                message=e.message,
            )
            for e in entries
        ],
        pagination=CursorPagination(
            limit=limit, next_cursor=_encode(entries[-1].id) if more and entries else None
        ),
    )
