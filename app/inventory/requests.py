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
from collections.abc import Collection

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


async def request_pushes(session: AsyncSession, master_sku_ids: Collection[int]) -> set[uuid.UUID]:
    """Every listing linked to these master SKUs is to be told their new figure."""
    if not master_sku_ids:
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
    rows = await session.execute(
        _MARK_LISTINGS_PENDING, {"ids": sorted(listing_ids), "grace": CLAIM_GRACE_SECONDS}
    )
    queue_push_jobs(session, {row.connection_id for row in rows})
