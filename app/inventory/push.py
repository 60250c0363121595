"""Telling the channels: a push round per connection claims that connection's pending listings
(and the failed or drifted ones whose retry is due), pushes them in the platform's batches,
reads those items back, and settles each as ok, drift, failed or unsupported, with a ledger row
for the push and one for the read-back.

No transaction is open while the marketplace is called: the claim (status, lease) commits
first and the outcomes are written in a short transaction after. One round per connection at a
time across processes: a session-level advisory lock held on a dedicated connection in
autocommit mode (idle, never idle in transaction), released when the round ends or its process
dies. A job that finds the lock taken returns at once: the round holding it looks for pending
listings after letting go and queues another round for them, so a request is never lost.

A listing is settled only if no new request arrived while it was being pushed (its `push_seq`
is unchanged); otherwise it stays pending for the next batch. A transient failure or a drift
gets a retry time from the retry policy, up to `PUSH_MAX_ATTEMPTS`; a refusal of the item
itself keeps the platform's words and is not retried until the figure changes."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.connections.credentials import connection_client
from app.inventory import ledger
from app.inventory.requests import CLAIM_GRACE_SECONDS, PUSH_JOB, queue_push_jobs
from app.inventory.rules import sellable_quantity
from app.jobs.outbox import enqueue
from app.jobs.policy import RetryPolicy
from app.models import MarketplaceConnection
from app.models.enums import ConnectionStatus
from app.platforms.base import ListingKey, MarketplaceClient, StockResult
from app.platforms.errors import MarketplaceError
from app.platforms.types import StockUpdate
from app.worker_context import WorkerContext

logger = logging.getLogger("app.inventory.push")

# Listings per claim: one batch of calls and one settling transaction.
CLAIM_SIZE = 500
# Claims per job; a connection still busy after that is handed to a fresh job.
MAX_BATCHES = 20
# A claim past its lease is the sweep's to re-queue; a round still running then only costs the
# sweep's job a look at the lock, so the lease need not outlast the slowest batch.
LEASE_SECONDS = 60
# The soonest a round queued for a retry starts.
MIN_RETRY_DEFER_SECONDS = 0.1
# Pushes and read-backs per figure before a failing or drifting listing is left flagged.
PUSH_MAX_ATTEMPTS = 10
# Connections whose pushes run; every other status (disconnected, re-authorization, a
# misconfigured connection) waits for the seller, and the sweep leaves it alone too.
PUSHABLE_STATUSES = (ConnectionStatus.ACTIVE, ConnectionStatus.ERROR)
# Refusals that no retry can fix (a campaign or promotion holds the stock): flagged
# `unsupported` at once. Matched on the platforms' words, lower-cased.
LOGICAL_REFUSALS = ("promotion", "campaign", "negative sellable", "holiday mode")

# What a round takes: linked listings that are pending, and failed or drifted ones whose retry
# is due (once per job: a listing this job already pushed waits for a later one). SKIP LOCKED:
# a listing a request is re-marking right now is left to the job that request queues, rather
# than waiting on its transaction.
_CLAIM = text(
    "WITH picked AS (SELECT l.id FROM marketplace_stock_levels l "
    "WHERE l.connection_id = :connection_id AND (l.push_status = 'pending' "
    "OR (l.push_status IN ('failed', 'drift') AND l.push_retry_at <= now() "
    "AND NOT l.id = ANY(CAST(:done AS bigint[])))) "
    "AND EXISTS (SELECT 1 FROM sku_mappings m WHERE m.listing_id = l.id "
    "AND m.master_sku_id IS NOT NULL) "
    "ORDER BY l.id LIMIT :limit FOR UPDATE OF l SKIP LOCKED), "
    "claimed AS (UPDATE marketplace_stock_levels l SET push_status = 'pending', "
    "push_retry_at = NULL, push_lease_until = now() + make_interval(secs => :lease) "
    "FROM picked WHERE l.id = picked.id RETURNING l.id, l.sku, l.external_product_id, "
    "l.external_variation_id, l.push_seq, l.push_attempts) "
    "SELECT c.*, s.id AS master_id, s.available, s.buffer, s.zero_below, s.max_quantity "
    "FROM claimed c JOIN sku_mappings m ON m.listing_id = c.id "
    "JOIN inventory_skus s ON s.id = m.master_sku_id ORDER BY c.id"
)
# Row locks in id order, as requests take them.
_LOCK = text(
    "SELECT id FROM marketplace_stock_levels WHERE id = ANY(CAST(:ids AS bigint[])) "
    "ORDER BY id FOR UPDATE"
)
_SETTLE = text(
    "UPDATE marketplace_stock_levels AS l SET push_status = o.status, pushed_stock = o.pushed, "
    "push_message = o.message, last_push_at = now(), pushed_seq = o.seq, "
    "push_attempts = o.attempts, push_retry_at = now() + o.retry_in * interval '1 second', "
    "push_lease_until = NULL, quantity = COALESCE(o.read, l.quantity) "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:seqs AS bigint[]), CAST(:statuses AS text[]), "
    "CAST(:pushed AS integer[]), CAST(:messages AS text[]), CAST(:attempts AS integer[]), "
    "CAST(:retry_in AS double precision[]), CAST(:reads AS integer[])) "
    "AS o(id, seq, status, pushed, message, attempts, retry_in, read) "
    "WHERE l.id = o.id AND l.push_seq = o.seq RETURNING l.id"
)
# Asked for again while being pushed: still pending, for the next batch (or, should this
# job stop first, for the sweep once the grace runs out).
_KEEP_PENDING = text(
    "UPDATE marketplace_stock_levels SET push_lease_until = now() + make_interval(secs => :grace) "
    "WHERE id = ANY(CAST(:ids AS bigint[])) AND push_status = 'pending'"
)
_WAITING = text(
    "SELECT l.id FROM marketplace_stock_levels l WHERE l.connection_id = :connection_id "
    "AND l.push_status = 'pending' AND EXISTS (SELECT 1 FROM sku_mappings m "
    "WHERE m.listing_id = l.id AND m.master_sku_id IS NOT NULL) "
    "LIMIT 1 FOR UPDATE OF l SKIP LOCKED"
)
_NEXT_RETRY = text(
    "SELECT EXTRACT(EPOCH FROM min(l.push_retry_at)) AS due, EXTRACT(EPOCH FROM now()) AS now "
    "FROM marketplace_stock_levels l WHERE l.connection_id = :connection_id "
    "AND l.push_status IN ('failed', 'drift') AND l.push_retry_at IS NOT NULL "
    "AND EXISTS (SELECT 1 FROM sku_mappings m WHERE m.listing_id = l.id "
    "AND m.master_sku_id IS NOT NULL)"
)


@dataclass(slots=True)
class ClaimedListing:
    id: int
    sku: str | None
    external_product_id: str
    external_variation_id: str
    seq: int
    attempts: int
    master_id: int
    available: int
    quantity: int  # what the channel may sell, as computed at the claim

    @property
    def key(self) -> ListingKey:
        return (self.external_product_id, self.external_variation_id)

    def update(self) -> StockUpdate:
        return StockUpdate(
            sku=self.sku or "",
            quantity=self.quantity,
            external_product_id=self.external_product_id,
            external_variation_id=self.external_variation_id or None,
        )


@dataclass(slots=True)
class Outcome:
    status: str
    message: str | None
    read: int | None
    attempts: int
    retry_in: float | None = None  # seconds until the sweep may try again; None: not retried
    read_back: bool = True  # a read-back row goes in the ledger


def push_policy(wc: WorkerContext) -> RetryPolicy:
    return dataclasses.replace(
        RetryPolicy.from_tuning(wc.settings.clients), max_attempts=PUSH_MAX_ATTEMPTS
    )


def push_lock_key(connection_id: uuid.UUID) -> int:
    """A 63-bit advisory-lock key for "a push round of this connection is executing" (distinct
    from the order sync's key, which is the first 8 bytes of the id)."""
    return int.from_bytes(connection_id.bytes[8:], "big") & 0x7FFF_FFFF_FFFF_FFFF


@asynccontextmanager
async def round_lock(engine: AsyncEngine, connection_id: uuid.UUID) -> AsyncIterator[bool]:
    """Whether this process holds the connection's push lock for the block. The lock is a
    session-level advisory lock on a connection of its own in autocommit: no transaction
    stays open while the round calls the marketplace."""
    key = push_lock_key(connection_id)
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        got = bool(await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))
        try:
            yield got
        finally:
            if got:
                try:
                    await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                except BaseException:
                    # Closing the connection is what releases the lock then; it must never go
                    # back to the pool holding it.
                    await conn.invalidate()
                    raise


async def push_connection(wc: WorkerContext, connection_id: uuid.UUID) -> int:
    """Push every pending listing of one connection; returns how many listings it pushed."""
    async with wc.sessionmaker() as session:
        connection = await session.get(MarketplaceConnection, connection_id)
        if connection is None or not _pushable(connection):
            return 0
        session.expunge(connection)
    async with round_lock(wc.database.engine, connection_id) as got:
        if not got:
            # The round holding the lock checks for pending listings once it lets go.
            return 0
        pushed = await _run_batches(wc, connection)
    await _follow_up(wc, connection_id)
    return pushed


def _pushable(connection: MarketplaceConnection) -> bool:
    return connection.is_active and connection.status in PUSHABLE_STATUSES


async def _run_batches(wc: WorkerContext, connection: MarketplaceConnection) -> int:
    policy = push_policy(wc)
    client = connection_client(wc, connection)
    done: set[int] = set()
    pushed = 0
    try:
        for _ in range(MAX_BATCHES):
            async with wc.sessionmaker() as session:
                claimed = await _claim(session, connection.id, done)
                await session.commit()
            if not claimed:
                break
            outcomes = await _push_and_read_back(client, claimed, policy)
            async with wc.sessionmaker() as session:
                await _settle(session, connection, claimed, outcomes)
                await session.commit()
            done |= {listing.id for listing in claimed}
            pushed += len(claimed)
    finally:
        await client.aclose()
    return pushed


async def _claim(
    session: AsyncSession, connection_id: uuid.UUID, done: set[int]
) -> list[ClaimedListing]:
    rows = await session.execute(
        _CLAIM,
        {
            "connection_id": connection_id,
            "done": sorted(done),
            "limit": CLAIM_SIZE,
            "lease": LEASE_SECONDS,
        },
    )
    return [
        ClaimedListing(
            id=row.id,
            sku=row.sku,
            external_product_id=row.external_product_id,
            external_variation_id=row.external_variation_id,
            seq=row.push_seq,
            attempts=row.push_attempts,
            master_id=row.master_id,
            available=row.available,
            quantity=sellable_quantity(row.available, row.buffer, row.zero_below, row.max_quantity),
        )
        for row in rows
    ]


async def _push_and_read_back(
    client: MarketplaceClient, claimed: Sequence[ClaimedListing], policy: RetryPolicy
) -> dict[int, Outcome]:
    """The marketplace calls of one batch; no database session is open here."""
    pushable = [listing for listing in claimed if listing.sku]
    updates = [listing.update() for listing in pushable]
    try:
        results = await client.update_stock(updates) if updates else []
    except MarketplaceError as exc:
        results = [StockResult.failed(update.sku, exc) for update in updates]
    by_id = {listing.id: result for listing, result in zip(pushable, results, strict=True)}
    accepted = [listing.update() for listing in pushable if by_id[listing.id].ok]
    stock: dict[ListingKey, int | None] = {}
    read_error: str | None = None
    if accepted:
        try:
            stock = await client.read_stock(accepted)
        except MarketplaceError as exc:
            read_error = str(exc)
    return {
        listing.id: _outcome(
            listing,
            by_id.get(listing.id, StockResult(listing.sku or "", False)),
            stock.get(listing.key),
            read_error,
            policy,
        )
        for listing in claimed
    }


def _outcome(
    listing: ClaimedListing,
    result: StockResult,
    read: int | None,
    read_error: str | None,
    policy: RetryPolicy,
) -> Outcome:
    attempts = listing.attempts + 1

    def retried(
        status: str, message: str, retry_after: float | None = None, *, read_back: bool = True
    ) -> Outcome:
        """A failure worth another try: back-off from the retry policy, up to its cap."""
        if attempts >= policy.max_attempts:
            message = f"{message} (not retried after {attempts} attempts)"
            return Outcome(status, message, read, attempts, read_back=read_back)
        retry_in = policy.delay(attempts, retry_after)
        return Outcome(status, message, read, attempts, retry_in, read_back=read_back)

    if not listing.sku:
        return Outcome("unsupported", "The listing has no seller SKU to push to", None, attempts)
    if not result.ok:
        message = result.message or "The platform refused the update"
        if any(word in message.lower() for word in LOGICAL_REFUSALS):
            return Outcome("unsupported", message, None, attempts)
        if result.retryable:
            return retried("failed", message, result.retry_after)
        # The platform refused the item itself (unknown item, invalid figure): no retry.
        return Outcome("failed", message, None, attempts)
    if read_error is not None:
        message = f"Pushed {listing.quantity}; the read-back failed: {read_error}"
        return retried("drift", message, read_back=False)
    if read == listing.quantity:
        return Outcome("ok", None, read, 0)
    shown = "nothing" if read is None else str(read)
    return retried("drift", f"Pushed {listing.quantity} but the platform shows {shown}")


async def _settle(
    session: AsyncSession,
    connection: MarketplaceConnection,
    claimed: Sequence[ClaimedListing],
    outcomes: dict[int, Outcome],
) -> None:
    """Write the outcomes and their ledger rows. A listing asked for again while it was being
    pushed (its seq moved on) stays pending for the next batch."""
    entries: list[ledger.Entry] = []
    for listing in claimed:
        entries += _ledger_entries(connection, listing, outcomes[listing.id])
    # The ledger rows first: their foreign key takes the master SKU's key lock before any
    # listing lock, as the order reservations take them.
    await ledger.append(session, entries)
    ids = [listing.id for listing in claimed]
    await session.execute(_LOCK, {"ids": ids})
    settled = await session.scalars(
        _SETTLE,
        {
            "ids": ids,
            "seqs": [listing.seq for listing in claimed],
            "statuses": [outcomes[i].status for i in ids],
            "pushed": [
                None if outcomes[listing.id].status == "unsupported" else listing.quantity
                for listing in claimed
            ],
            "messages": [outcomes[i].message for i in ids],
            "attempts": [outcomes[i].attempts for i in ids],
            "retry_in": [outcomes[i].retry_in for i in ids],
            "reads": [outcomes[i].read for i in ids],
        },
    )
    still_pending = sorted(set(ids) - set(settled.all()))
    if still_pending:
        await session.execute(_KEEP_PENDING, {"ids": still_pending, "grace": CLAIM_GRACE_SECONDS})


def _ledger_entries(
    connection: MarketplaceConnection, listing: ClaimedListing, outcome: Outcome
) -> list[ledger.Entry]:
    refused = outcome.status in ("failed", "unsupported")

    def entry(kind: str, quantity: int, message: str | None) -> ledger.Entry:
        return ledger.Entry(
            listing.master_id,
            kind,
            quantity,
            listing.available,
            connection_id=connection.id,
            listing_id=listing.id,
            platform_code=connection.platform_code,
            message=message,
        )

    entries = [entry("push", listing.quantity, outcome.message if refused else None)]
    if not refused and outcome.read_back:
        entries.append(entry("readback", outcome.read or 0, outcome.message or "in step"))
    return entries


async def _follow_up(wc: WorkerContext, connection_id: uuid.UUID) -> None:
    """After letting go of the lock: queue a round for listings asked for since the last claim
    (their own jobs may have found the lock taken), or for the next retry that falls due."""
    async with wc.sessionmaker() as session:
        waiting = await session.scalar(_WAITING, {"connection_id": connection_id})
        if waiting is not None:
            queue_push_jobs(session, [connection_id])
        else:
            row = (await session.execute(_NEXT_RETRY, {"connection_id": connection_id})).one()
            if row.due is not None:
                due = float(row.due)
                # One job per due time however many rounds ask for it. Never at once: a retry
                # already due was either pushed by this job (the next one takes it) or is
                # row-locked by a request, which queues its own job.
                enqueue(
                    session,
                    PUSH_JOB,
                    str(connection_id),
                    dedupe_key=f"{PUSH_JOB}:{connection_id}:due:{round(due * 1000)}",
                    defer_seconds=max(MIN_RETRY_DEFER_SECONDS, due - float(row.now) + 0.01),
                )
        await session.commit()
