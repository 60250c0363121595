"""Telling the channels: one job per connection pushes every pending listing in the
platform's batches, reads the shop back, and settles each listing as ok, drift, failed or
unsupported, with a ledger row for the push and one for the read-back.

A listing is settled only if no new request arrived while it was being pushed (its
`push_seq` is unchanged); otherwise it stays pending for the next round. A read-back that
disagrees is `drift` and is pushed again with back-off a few times, then left flagged; a
refusal keeps the platform's words and is retried a few times at most."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.connections.credentials import connection_client
from app.inventory import ledger
from app.inventory.requests import PUSH_JOB, push_job_id
from app.inventory.rules import sellable_quantity
from app.models import MarketplaceConnection
from app.models.enums import ConnectionStatus
from app.platforms.base import MarketplaceClient, StockResult
from app.platforms.errors import MarketplaceError
from app.platforms.types import PlatformCode, StockUpdate
from app.worker_context import WorkerContext

logger = logging.getLogger("app.inventory.push")

MAX_ATTEMPTS = 4
ROUND_SIZE = 500
MAX_ROUNDS = 20
RETRY_BASE_SECONDS = 1.0
BEHIND_DEFER_SECONDS = 0.1
# Refusals that no retry can fix (a campaign or promotion holds the stock): flagged
# `unsupported` at once. Matched on the platforms' words, lower-cased.
LOGICAL_REFUSALS = ("promotion", "campaign", "negative sellable", "holiday mode")

_PENDING = text(
    "SELECT l.id, l.sku, l.external_product_id, l.external_variation_id, l.push_seq, "
    "l.push_attempts, l.platform_code, s.id AS master_id, s.available, s.buffer, s.zero_below, "
    "s.max_quantity FROM marketplace_stock_levels l "
    "JOIN sku_mappings m ON m.listing_id = l.id "
    "JOIN inventory_skus s ON s.id = m.master_sku_id "
    "WHERE l.connection_id = :connection_id AND (l.push_status = 'pending' "
    "OR (l.push_status IN ('drift', 'failed') AND l.push_attempts > 0 "
    "AND l.push_attempts < :max_attempts AND NOT (l.id = ANY(CAST(:done AS bigint[]))))) "
    "ORDER BY l.id LIMIT :limit"
)
_SETTLE = text(
    "UPDATE marketplace_stock_levels SET push_status = :status, pushed_stock = :pushed, "
    "push_message = :message, last_push_at = now(), pushed_seq = :seq, "
    "push_attempts = :attempts, quantity = COALESCE(:read, quantity) "
    "WHERE id = :id AND push_seq = :seq"
)


@dataclass(slots=True)
class PendingListing:
    id: int
    sku: str | None
    external_product_id: str
    external_variation_id: str
    seq: int
    attempts: int
    platform_code: str
    master_id: int
    available: int
    quantity: int


@dataclass(slots=True)
class Outcome:
    status: str
    message: str | None
    read: int | None
    attempts: int


async def _pending(
    session: AsyncSession, connection_id: uuid.UUID, done: set[int]
) -> list[PendingListing]:
    rows = await session.execute(
        _PENDING,
        {
            "connection_id": connection_id,
            "done": sorted(done),
            "max_attempts": MAX_ATTEMPTS,
            "limit": ROUND_SIZE,
        },
    )
    return [
        PendingListing(
            id=row.id,
            sku=row.sku,
            external_product_id=row.external_product_id,
            external_variation_id=row.external_variation_id,
            seq=row.push_seq,
            attempts=row.push_attempts,
            platform_code=row.platform_code,
            master_id=row.master_id,
            available=row.available,
            quantity=sellable_quantity(row.available, row.buffer, row.zero_below, row.max_quantity),
        )
        for row in rows
    ]


async def read_back(client: MarketplaceClient) -> dict[tuple[str, str], int | None]:
    """The shop's stock per (product id, variation id) as the platform reports it now."""
    # The clients offer no by-id product read yet, so this reads the shop's catalogue once
    # per round (all of a round's listings share it).
    stock: dict[tuple[str, str], int | None] = {}
    async for page in client.iter_products():
        for product in page:
            for variation in product.variations:
                key = (product.external_product_id, variation.external_variation_id or "")
                stock[key] = variation.stock
    return stock


def _outcome(listing: PendingListing, result: StockResult, read: int | None) -> Outcome:
    attempts = listing.attempts + 1
    if not listing.sku:
        return Outcome("unsupported", "The listing has no seller SKU to push to", None, attempts)
    if not result.ok:
        message = result.message or "The platform refused the update"
        if any(word in message.lower() for word in LOGICAL_REFUSALS):
            return Outcome("unsupported", message, None, MAX_ATTEMPTS)
        return Outcome("failed", message, None, attempts)
    if read == listing.quantity:
        return Outcome("ok", None, read, 0)
    shown = "nothing" if read is None else str(read)
    message = f"Pushed {listing.quantity} but the platform shows {shown}"
    return Outcome("drift", message, read, attempts)


def push_lock_key(connection_id: uuid.UUID) -> int:
    """A 63-bit advisory-lock key for "a push run of this connection is executing" (distinct
    from the order sync's key, which is the first 8 bytes of the id)."""
    return int.from_bytes(connection_id.bytes[8:], "big") & 0x7FFF_FFFF_FFFF_FFFF


async def push_connection(wc: WorkerContext, connection_id: uuid.UUID) -> int:
    """Push every pending listing of one connection; returns how many were settled. A run
    already going for the connection means this one comes back shortly (never lost)."""
    async with wc.sessionmaker() as lock_session:
        got = await lock_session.scalar(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": push_lock_key(connection_id)}
        )
        if not got:
            if wc.redis is not None:
                await wc.redis.enqueue_job(
                    PUSH_JOB,
                    str(connection_id),
                    _job_id=push_job_id(connection_id) + ":behind",
                    _defer_by=BEHIND_DEFER_SECONDS,
                )
            return 0
        return await _push_locked(wc, connection_id)


async def _push_locked(wc: WorkerContext, connection_id: uuid.UUID) -> int:
    async with wc.sessionmaker() as session:
        connection = await session.get(MarketplaceConnection, connection_id)
        if connection is None or connection.status in (
            ConnectionStatus.DISCONNECTED,
            ConnectionStatus.REAUTH_REQUIRED,
        ):
            return 0
        platform = PlatformCode(connection.platform_code)
    client = connection_client(wc, connection)
    # Pending listings are picked up round after round (a sale during a push re-marks them);
    # a drifting or refused one is retried once per run at most, then by a deferred run.
    done: set[int] = set()
    retry_in: float | None = None
    more = False
    try:
        for _ in range(MAX_ROUNDS):
            async with wc.sessionmaker() as session:
                listings = await _pending(session, connection_id, done)
            more = bool(listings)
            if not listings:
                break
            done |= {listing.id for listing in listings}
            pushable = [listing for listing in listings if listing.sku]
            updates = [
                StockUpdate(
                    sku=listing.sku or "",
                    quantity=listing.quantity,
                    external_product_id=listing.external_product_id,
                    external_variation_id=listing.external_variation_id or None,
                )
                for listing in pushable
            ]
            try:
                results = await client.update_stock(updates) if updates else []
            except MarketplaceError as exc:
                results = [StockResult(update.sku, False, str(exc)) for update in updates]
            by_id = {listing.id: result for listing, result in zip(pushable, results, strict=True)}
            stock = await read_back(client) if any(r.ok for r in results) else {}
            outcomes = {}
            for listing in listings:
                result = by_id.get(listing.id, StockResult(listing.sku or "", False, None))
                read = stock.get((listing.external_product_id, listing.external_variation_id))
                outcomes[listing.id] = _outcome(listing, result, read)
            async with wc.sessionmaker() as session:
                await _settle(session, connection_id, platform, listings, outcomes)
                await session.commit()
            for outcome in outcomes.values():
                if outcome.status in ("drift", "failed") and outcome.attempts < MAX_ATTEMPTS:
                    delay = RETRY_BASE_SECONDS * 2 ** (outcome.attempts - 1)
                    retry_in = delay if retry_in is None else min(retry_in, delay)
    finally:
        await client.aclose()
    if more and wc.redis is not None:
        # Still busy after MAX_ROUNDS: hand over to a fresh run rather than hold the worker.
        retry_in = 0.0 if retry_in is None else retry_in
    if retry_in is not None and wc.redis is not None:
        await wc.redis.enqueue_job(
            PUSH_JOB,
            str(connection_id),
            _job_id=f"{PUSH_JOB}:{connection_id}:retry:{datetime.now(UTC).timestamp():.0f}",
            _defer_by=retry_in or None,
        )
    return len(done)


async def _settle(
    session: AsyncSession,
    connection_id: uuid.UUID,
    platform: PlatformCode,
    listings: list[PendingListing],
    outcomes: dict[int, Outcome],
) -> None:
    """Write the outcomes and their ledger rows. A listing asked for again while it was being
    pushed (its seq moved on) is left pending for the next round."""
    entries: list[ledger.Entry] = []
    for listing in listings:
        outcome = outcomes[listing.id]
        entries += _ledger_entries(connection_id, platform, listing, outcome)
    # The ledger rows first: their foreign key takes the master SKU's key lock before any
    # listing lock, the order reservations take them in.
    await ledger.append(session, entries)
    for listing in listings:
        outcome = outcomes[listing.id]
        await session.execute(
            _SETTLE,
            {
                "status": outcome.status,
                "pushed": listing.quantity if outcome.status != "unsupported" else None,
                "message": outcome.message,
                "seq": listing.seq,
                "attempts": outcome.attempts,
                "read": outcome.read,
                "id": listing.id,
            },
        )


def _ledger_entries(
    connection_id: uuid.UUID, platform: PlatformCode, listing: PendingListing, outcome: Outcome
) -> list[ledger.Entry]:
    refused = outcome.status in ("failed", "unsupported")

    def entry(kind: str, quantity: int, message: str | None) -> ledger.Entry:
        return ledger.Entry(
            listing.master_id,
            kind,
            quantity,
            listing.available,
            connection_id=connection_id,
            listing_id=listing.id,
            platform_code=platform.value,
            message=message,
        )

    entries = [entry("push", listing.quantity, outcome.message if refused else None)]
    if not refused:
        entries.append(entry("readback", outcome.read or 0, outcome.message or "in step"))
    return entries
