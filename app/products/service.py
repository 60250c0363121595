"""Product syncs (one running per connection, a job like the order sync) and the listings API.

A listing is one sellable row: a product without variations, or each variation. New
listings link to the master SKU named like their seller SKU; a master SKU created this way
starts from the lowest stock its listings reported at their first sync."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, literal_column, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.connections.credentials import connection_client
from app.connections.repository import mark_status
from app.errors import NotFoundError, SyncAlreadyRunning
from app.inventory import ledger
from app.inventory.requests import request_listing_pushes
from app.inventory.rules import Balance
from app.jobs.outbox import enqueue
from app.models import (
    InventorySku,
    MarketplaceConnection,
    MarketplaceProduct,
    MarketplaceStockLevel,
    MarketplaceSyncLog,
    SkuMapping,
)
from app.models.enums import ConnectionStatus, SyncStatus, SyncTrigger
from app.money import format_amount
from app.orders.service import invalid
from app.platforms.base import MarketplaceClient
from app.platforms.errors import HostNotConfigured, MarketplaceError
from app.platforms.types import NormalizedProduct, PlatformCode
from app.products.schemas import ListingOut, ListingPage, ListingPagination, ProductSyncSummary
from app.sync import lifecycle
from app.uow import UnitOfWork
from app.worker_context import WorkerContext

logger = logging.getLogger("app.products")

PRODUCT_SYNC_JOB = lifecycle.PRODUCTS.job
KIND = lifecycle.PRODUCTS.name
INTERRUPTED = lifecycle.PRODUCTS.interrupted


def summary(log: MarketplaceSyncLog) -> ProductSyncSummary:
    return lifecycle.summary(log, ProductSyncSummary)


def product_sync_job_id(log_id: uuid.UUID) -> str:
    return lifecycle.job_id(lifecycle.PRODUCTS, log_id)


async def create_product_sync(
    session: AsyncSession,
    connection: MarketplaceConnection,
    *,
    stale_after: timedelta,
    trigger: SyncTrigger = SyncTrigger.MANUAL,
) -> MarketplaceSyncLog:
    """The running log (the job is the caller's to queue). A product sync already running is a
    409 with its id; one whose runner died long ago is closed first."""
    return await lifecycle.open_run(
        session,
        connection,
        lifecycle.PRODUCTS,
        stale_after=stale_after,
        trigger=trigger,
        queue=False,
    )


async def start_product_sync(
    uow: UnitOfWork,
    connection: MarketplaceConnection,
    *,
    stale_after: timedelta,
    trigger: SyncTrigger = SyncTrigger.MANUAL,
) -> MarketplaceSyncLog:
    return await lifecycle.open_run(
        uow.session, connection, lifecycle.PRODUCTS, stale_after=stale_after, trigger=trigger
    )


async def apply_product_push(
    session: AsyncSession, connection_id: uuid.UUID, external_product_ids: Sequence[str]
) -> None:
    """A platform said these products were created, edited or deleted: re-read the shop's
    products with a product sync, queued after the caller commits. If one is running it may
    have read those products already, so a follow-up sync is queued for after it."""
    connection = await session.get(MarketplaceConnection, connection_id)
    if connection is None or connection.status in (
        ConnectionStatus.DISCONNECTED,
        ConnectionStatus.REAUTH_REQUIRED,
    ):
        return
    try:
        async with session.begin_nested():
            log = await create_product_sync(
                session, connection, stale_after=timedelta(hours=1), trigger=SyncTrigger.WEBHOOK
            )
            log.details = {"externalProductIds": list(external_product_ids)[:50]}
    except SyncAlreadyRunning:
        # The running sync may have read these products already: queue a follow-up run.
        # Coalesced only while waiting: once a follow-up has started, a later push gets one
        # of its own (the product it names may be newer than what that run reads).
        enqueue(
            session,
            PRODUCT_SYNC_FOLLOW_UP_JOB,
            str(connection_id),
            dedupe_key=f"{PRODUCT_SYNC_FOLLOW_UP_JOB}:{connection_id}",
            defer_seconds=30,
        )
        return
    lifecycle.queue_run(session, lifecycle.PRODUCTS, log.id)


PRODUCT_SYNC_FOLLOW_UP_JOB = "sync_products_follow_up"


# --- the job ---------------------------------------------------------------------------------


@dataclass(slots=True)
class SyncCounts:
    fetched: int = 0
    created: int = 0
    updated: int = 0


_LISTING_FIELDS = ("sku", "name", "price", "currency", "quantity", "status")


def _listing_rows(
    product: NormalizedProduct, product_row_id: int, connection: MarketplaceConnection
) -> list[dict[str, Any]]:
    variations = product.variations
    rows = []
    for variation in variations:
        rows.append(
            {
                "connection_id": connection.id,
                "user_id": connection.user_id,
                "platform_code": connection.platform_code,
                "product_id": product_row_id,
                "external_product_id": product.external_product_id,
                "external_variation_id": variation.external_variation_id or "",
                "sku": (variation.sku or None) and variation.sku[:128],
                "name": (variation.name or None) and (variation.name or "")[:255],
                "price": variation.price,
                "currency": product.currency,
                "quantity": variation.stock,
                "status": product.status[:64] if product.status else None,
                "raw": {},
                "synced_at": func.now(),
            }
        )
    return rows


async def _store_page(
    session: AsyncSession,
    connection: MarketplaceConnection,
    products: Sequence[NormalizedProduct],
    known: dict[tuple[str, str], tuple[Any, ...]],
    counts: SyncCounts,
) -> list[int]:
    """Upsert one page; returns the ids of listings seen for the first time."""
    new_listings: list[int] = []
    for product in products:
        statement = insert(MarketplaceProduct).values(
            connection_id=connection.id,
            user_id=connection.user_id,
            platform_code=connection.platform_code,
            external_product_id=product.external_product_id,
            name=product.name[:512],
            status=(product.status or "")[:64],
            currency=product.currency,
            product_updated_at=product.updated_at,
            raw=product.raw,
        )
        product_id = await session.scalar(
            statement.on_conflict_do_update(
                index_elements=["connection_id", "external_product_id"],
                set_={
                    "name": statement.excluded.name,
                    "status": statement.excluded.status,
                    "currency": statement.excluded.currency,
                    "product_updated_at": statement.excluded.product_updated_at,
                    "raw": statement.excluded.raw,
                    "platform_code": statement.excluded.platform_code,
                    "updated_at": func.now(),
                },
            ).returning(MarketplaceProduct.id)
        )
        assert product_id is not None
        rows = _listing_rows(product, product_id, connection)
        if not rows:
            continue
        listing = insert(MarketplaceStockLevel).values(rows)
        written: Any = await session.execute(
            listing.on_conflict_do_update(
                index_elements=["connection_id", "external_product_id", "external_variation_id"],
                set_={
                    name: listing.excluded[name]
                    for name in (*_LISTING_FIELDS, "product_id", "user_id", "platform_code")
                }
                | {"synced_at": func.now()},
            ).returning(
                MarketplaceStockLevel.id,
                MarketplaceStockLevel.external_variation_id,
                literal_column("(xmax = 0)").label("inserted"),
            )
        )
        by_variation = {row.external_variation_id: row for row in written}
        for row in rows:
            counts.fetched += 1
            key = (row["external_product_id"], row["external_variation_id"])
            stored = by_variation[row["external_variation_id"]]
            content = tuple(row[name] for name in _LISTING_FIELDS)
            if stored.inserted:
                counts.created += 1
                new_listings.append(stored.id)
            elif known.get(key) != content:
                counts.updated += 1
            known[key] = content
    return new_listings


async def _known_listings(
    session: AsyncSession, connection_id: uuid.UUID
) -> dict[tuple[str, str], tuple[Any, ...]]:
    rows = await session.execute(
        select(
            MarketplaceStockLevel.external_product_id,
            MarketplaceStockLevel.external_variation_id,
            *(getattr(MarketplaceStockLevel, name) for name in _LISTING_FIELDS),
        ).where(MarketplaceStockLevel.connection_id == connection_id)
    )
    known: dict[tuple[str, str], tuple[Any, ...]] = {}
    for row in rows:
        values = tuple(row[2:])
        price = values[2]
        # numeric comes back with the column's scale; compare it as the mapper produced it
        known[(row[0], row[1])] = (
            *values[:2],
            Decimal(price) if price is not None else None,
            *values[3:],
        )
    return known


async def link_new_listings(
    session: AsyncSession, user_id: str, listing_ids: Sequence[int]
) -> None:
    """Link each new listing to the master SKU equal to its seller SKU (creating it from the
    listing's stock), unless a mapping row already decides. A master SKU the seller has not
    set takes the lowest stock reported by its listings' first syncs."""
    if not listing_ids:
        return
    listings = (
        await session.scalars(
            select(MarketplaceStockLevel)
            .where(
                MarketplaceStockLevel.id.in_(listing_ids), MarketplaceStockLevel.sku.is_not(None)
            )
            .order_by(MarketplaceStockLevel.id)
        )
    ).all()
    if not listings:
        return
    skus = sorted({listing.sku for listing in listings if listing.sku})
    await session.execute(
        insert(InventorySku)
        .values([{"user_id": user_id, "sku": sku, "available": 0} for sku in skus])
        .on_conflict_do_nothing(index_elements=["user_id", "sku"])
    )
    masters = {
        m.sku: m
        for m in (
            await session.scalars(
                select(InventorySku)
                .where(InventorySku.user_id == user_id, InventorySku.sku.in_(skus))
                .order_by(InventorySku.id)
                .with_for_update(key_share=True)
            )
        ).all()
    }
    counted = await session.execute(
        select(SkuMapping.master_sku_id, func.count())
        .where(SkuMapping.master_sku_id.in_([m.id for m in masters.values()]))
        .group_by(SkuMapping.master_sku_id)
    )
    linked_counts: dict[int, int] = {row[0]: row[1] for row in counted if row[0] is not None}
    inserted = await session.scalars(
        insert(SkuMapping)
        .values(
            [
                {
                    "user_id": user_id,
                    "listing_id": listing.id,
                    "master_sku_id": masters[listing.sku].id,
                    "source": "auto",
                }
                for listing in listings
                if listing.sku
            ]
        )
        .on_conflict_do_nothing(index_elements=["listing_id"])
        .returning(SkuMapping.listing_id)
    )
    linked = set(inserted.all())
    entries: list[ledger.Entry] = []
    for listing in listings:
        if listing.id not in linked or not listing.sku:
            continue
        master = masters[listing.sku]
        stock = max(0, listing.quantity or 0)
        first = linked_counts.get(master.id, 0) == 0
        linked_counts[master.id] = linked_counts.get(master.id, 0) + 1
        if master.seller_set or (not first and stock >= master.available - master.oversold):
            continue
        balance = Balance.of(stock)
        master.available, master.oversold = balance.available, balance.oversold
        entries.append(
            ledger.Entry(
                master.id,
                "set",
                stock,
                balance.available,
                connection_id=listing.connection_id,
                listing_id=listing.id,
                platform_code=listing.platform_code,
                message="lowest stock reported by a linked listing at its first product sync",
            )
        )
    await session.flush()
    await ledger.append(session, entries)
    # Every linked listing of these SKUs is told the one figure, the new ones included.
    touched = [m.id for m in masters.values()]
    rows = await session.scalars(
        select(SkuMapping.listing_id).where(SkuMapping.master_sku_id.in_(touched))
    )
    await request_listing_pushes(session, rows.all())


async def run_product_sync(wc: WorkerContext, sync_log_id: uuid.UUID) -> str:
    async with wc.sessionmaker() as session:
        log = await session.get(MarketplaceSyncLog, sync_log_id)
        if log is None or log.status != SyncStatus.RUNNING or log.kind != KIND:
            return "not running"
        connection = await session.get(MarketplaceConnection, log.connection_id)
        if connection is None:
            return "no connection"
        session.expunge(connection)
        stop = await lifecycle.stop_reason(session, connection.id)
        if stop is not None:
            lifecycle.finish(log, SyncStatus.FAILED, stop)
            await session.commit()
            return str(log.status)
        await session.commit()  # the stop check's row lock ends here, before any call
    client: MarketplaceClient | None = None
    counts = SyncCounts()
    error: str | None = None
    misconfigured = False
    try:
        client = connection_client(wc, connection)
        async with wc.sessionmaker() as session:
            known = await _known_listings(session, connection.id)
        async for page in client.iter_products():
            async with wc.sessionmaker() as session:
                # A disconnect stops the run before its next page is written.
                error = await lifecycle.stop_reason(session, connection.id)
                if error is not None:
                    break
                new = await _store_page(session, connection, page, known, counts)
                await link_new_listings(session, connection.user_id, new)
                await session.execute(
                    text(
                        "UPDATE marketplace_sync_logs SET products_fetched = :f, "
                        "products_created = :c, products_updated = :u, pages_done = pages_done + 1,"
                        " heartbeat_at = now() WHERE id = :id"
                    ),
                    {"f": counts.fetched, "c": counts.created, "u": counts.updated, "id": log.id},
                )
                await session.commit()
    except HostNotConfigured as exc:
        error = exc.message
        misconfigured = True
    except MarketplaceError as exc:
        error = str(exc)
    except Exception:
        # A bug must not leave the log running (it would block the connection's syncs).
        error = "Internal error during the product sync"
        logger.exception("product sync failed")
    finally:
        if client is not None:
            await client.aclose()
    async with wc.sessionmaker() as session:
        stored = await session.get(MarketplaceSyncLog, sync_log_id)
        assert stored is not None
        lifecycle.finish(stored, SyncStatus.FAILED if error else SyncStatus.SUCCESS, error)
        stored.products_fetched = counts.fetched
        stored.products_created = counts.created
        stored.products_updated = counts.updated
        if misconfigured and error:
            await mark_status(session, connection.id, ConnectionStatus.MISCONFIGURED, error)
        await session.commit()
        return str(stored.status)


# --- listings --------------------------------------------------------------------------------


def encode_cursor(listing_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([1, listing_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        version, listing_id = json.loads(
            base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        )
        if version != 1 or type(listing_id) is not int or not 0 <= listing_id < 2**63:
            raise ValueError("bad cursor")
    except (ValueError, TypeError) as exc:
        raise invalid("cursor", "Malformed cursor; pass nextCursor from a previous page") from exc
    return listing_id


@dataclass(slots=True)
class ListingFilter:
    user_id: str
    platform_code: PlatformCode | None = None
    connection_id: uuid.UUID | None = None
    q: str | None = None
    listing_id: int | None = None


async def list_listings(
    session: AsyncSession, where: ListingFilter, *, limit: int, offset: int, cursor: str | None
) -> ListingPage:
    if cursor is not None and offset:
        raise invalid("cursor", "Use either cursor or offset, not both")
    listing, product, master = MarketplaceStockLevel, MarketplaceProduct, InventorySku
    conditions = [listing.user_id == where.user_id]
    if where.platform_code is not None:
        conditions.append(listing.platform_code == where.platform_code.value)
    if where.connection_id is not None:
        conditions.append(listing.connection_id == where.connection_id)
    if where.listing_id is not None:
        conditions.append(listing.id == where.listing_id)
    if where.q:
        pattern = "%" + where.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append(
            listing.sku.ilike(pattern) | product.name.ilike(pattern) | listing.name.ilike(pattern)
        )
    query = (
        select(listing, product.name.label("product_name"), master.sku.label("master_sku"))
        .join(product, product.id == listing.product_id)
        .outerjoin(SkuMapping, SkuMapping.listing_id == listing.id)
        .outerjoin(master, master.id == SkuMapping.master_sku_id)
        .where(*conditions)
    )
    total: int | None = None
    if cursor is None:
        count_query = (
            select(func.count())
            .select_from(listing)
            .join(product, product.id == listing.product_id)
            .where(*conditions)
        )
        total = int(await session.scalar(count_query) or 0)
    else:
        query = query.where(listing.id > decode_cursor(cursor))
    rows = (await session.execute(query.order_by(listing.id).limit(limit + 1).offset(offset))).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    data = [
        ListingOut(
            id=row[0].id,
            connection_id=row[0].connection_id,
            platform_code=row[0].platform_code,
            external_product_id=row[0].external_product_id,
            external_variation_id=row[0].external_variation_id or None,
            sku=row[0].sku,
            name=row.product_name,
            variation_name=row[0].name,
            price=format_amount(row[0].price, row[0].currency)
            if row[0].price is not None
            else None,
            currency=row[0].currency,
            platform_stock=row[0].quantity,
            status=row[0].status,
            image_url=row[0].image_url,
            master_sku=row.master_sku,
            synced_at=row[0].synced_at,
        )
        for row in rows
    ]
    return ListingPage(
        data=data,
        pagination=ListingPagination(
            total=total,
            limit=limit,
            offset=offset,
            next_cursor=encode_cursor(rows[-1][0].id) if has_more and rows else None,
        ),
    )


async def get_listing(session: AsyncSession, user_id: str, listing_id: int) -> ListingOut:
    page = await list_listings(
        session, ListingFilter(user_id, listing_id=listing_id), limit=1, offset=0, cursor=None
    )
    if not page.data:
        raise NotFoundError("Listing not found")
    return page.data[0]


async def get_log(
    session: AsyncSession, user_id: str, sync_log_id: uuid.UUID
) -> MarketplaceSyncLog:
    log = await session.scalar(
        select(MarketplaceSyncLog).where(
            MarketplaceSyncLog.id == sync_log_id, MarketplaceSyncLog.user_id == user_id
        )
    )
    if log is None:
        raise NotFoundError("Sync log not found")
    return log
