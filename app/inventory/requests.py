"""Asking for pushes: mark the linked listings pending and queue one coalesced job per
connection in the caller's transaction. Per connection rather than per SKU, so that one job
fills the platform's batch (Lazada 20 SKUs, Meta up to 3,000 items) and one read-back serves
them all, inside the connection's call budget.

The dedupe key names a short time slot: requests within one slot share one job. A request
that arrives while a round runs is in a later slot (or, with the outbox, finds no job that has
not started), so it gets its own job; rounds of one connection are serialized by the push
round's lock (app/inventory/push.py), never by the key."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Collection, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.jobs.outbox import enqueue

PUSH_JOB = "push_stock"
# Orders arriving together for one shop share one push.
PUSH_DEFER_SECONDS = 0.05
COALESCE_BUCKETS_PER_SECOND = 20
# A pending listing no round has claimed by then is taken as a lost job by the sweep.
CLAIM_GRACE_SECONDS = 10

# Row locks in id order, as the push round settles them: two writers never deadlock. A new
# figure starts a fresh series of attempts; the lease only ever grows (a round that holds the
# listing keeps it until it settles).
_MARK_PENDING = text(
    "WITH target AS (SELECT l.id FROM marketplace_stock_levels l "
    "JOIN sku_mappings m ON m.listing_id = l.id "
    "WHERE m.master_sku_id = ANY(CAST(:skus AS bigint[])) ORDER BY l.id FOR UPDATE OF l) "
    "UPDATE marketplace_stock_levels AS l SET push_status = 'pending', "
    "push_seq = l.push_seq + 1, push_attempts = 0, push_retry_at = NULL, "
    "push_lease_until = GREATEST(l.push_lease_until, now() + make_interval(secs => :grace)) "
    "FROM target WHERE l.id = target.id RETURNING l.connection_id"
)
_MARK_LISTINGS_PENDING = text(
    "WITH target AS (SELECT id FROM marketplace_stock_levels "
    "WHERE id = ANY(CAST(:ids AS bigint[])) ORDER BY id FOR UPDATE) "
    "UPDATE marketplace_stock_levels AS l SET push_status = 'pending', "
    "push_seq = l.push_seq + 1, push_attempts = 0, push_retry_at = NULL, "
    "push_lease_until = GREATEST(l.push_lease_until, now() + make_interval(secs => :grace)) "
    "FROM target WHERE l.id = target.id RETURNING l.connection_id"
)


def push_dedupe_key(connection_id: uuid.UUID | str, at: float | None = None) -> str:
    slot = int((time.time() if at is None else at) * COALESCE_BUCKETS_PER_SECOND)
    return f"{PUSH_JOB}:{connection_id}:{slot}"


def queue_push_jobs(
    session: AsyncSession,
    connection_ids: Collection[uuid.UUID],
    *,
    defer_seconds: float | None = None,
) -> None:
    """One push job per connection, coalesced with any other asked for in the same slot."""
    # The job starts after its time slot ends: a request later in the same slot (coalesced
    # into this job) is then still read by it.
    now = time.time()
    if defer_seconds is None:
        slot_end = (int(now * COALESCE_BUCKETS_PER_SECOND) + 1) / COALESCE_BUCKETS_PER_SECOND
        defer_seconds = PUSH_DEFER_SECONDS + (slot_end - now)
    for connection_id in sorted(connection_ids):
        enqueue(
            session,
            PUSH_JOB,
            str(connection_id),
            dedupe_key=push_dedupe_key(connection_id, now),
            defer_seconds=defer_seconds,
        )


_BATCH = "omni_push_batch"


@dataclass
class PushBatch:
    """Pushes asked for during a bulk change, asked for once when it ends: one job (so one
    push round) per connection for the whole bulk, whatever its length. Each row collects
    into its own sets, kept only when the row succeeds (its savepoint rolled back, the row
    asks for nothing)."""

    masters: set[int] = field(default_factory=set)
    listings: set[int] = field(default_factory=set)

    @contextmanager
    def row(self) -> Iterator[None]:
        outer = (self.masters, self.listings)
        self.masters, self.listings = set(), set()
        try:
            yield
        except BaseException:
            self.masters, self.listings = outer
            raise
        outer[0].update(self.masters)
        outer[1].update(self.listings)
        self.masters, self.listings = outer


@asynccontextmanager
async def coalesced_pushes(session: AsyncSession) -> AsyncIterator[PushBatch]:
    """Inside the block `request_pushes` and `request_listing_pushes` only collect; the
    pushes are asked for when the block ends (not when it raises: the transaction is lost)."""
    batch = PushBatch()
    session.info[_BATCH] = batch
    try:
        yield batch
    finally:
        del session.info[_BATCH]
    await request_pushes(session, batch.masters)
    await request_listing_pushes(session, batch.listings)


def _batch(session: AsyncSession) -> PushBatch | None:
    batch = session.info.get(_BATCH)
    return batch if isinstance(batch, PushBatch) else None


async def request_pushes(session: AsyncSession, master_sku_ids: Collection[int]) -> set[uuid.UUID]:
    """Every listing linked to these master SKUs is to be told their new figure. Returns the
    connections asked (none yet inside `coalesced_pushes`)."""
    if not master_sku_ids:
        return set()
    batch = _batch(session)
    if batch is not None:
        batch.masters.update(master_sku_ids)
        return set()
    rows = await session.execute(
        _MARK_PENDING, {"skus": sorted(master_sku_ids), "grace": CLAIM_GRACE_SECONDS}
    )
    connections = {row.connection_id for row in rows}
    queue_push_jobs(session, connections)
    return connections


async def request_listing_pushes(session: AsyncSession, listing_ids: Collection[int]) -> None:
    if not listing_ids:
        return
    batch = _batch(session)
    if batch is not None:
        batch.listings.update(listing_ids)
        return
    rows = await session.execute(
        _MARK_LISTINGS_PENDING, {"ids": sorted(listing_ids), "grace": CLAIM_GRACE_SECONDS}
    )
    queue_push_jobs(session, {row.connection_id for row in rows})
