"""Asking for pushes: mark the linked listings pending and queue one coalesced job per
connection (after commit). Per connection rather than per SKU, so that one job fills the
platform's batch (Lazada 20 SKUs, Meta up to 3,000 items) and one read-back serves them all,
inside the connection's call budget.

Job ids coalesce requests within a short time bucket. A fixed id would lose a wake-up: a
request arriving while the job is finishing is refused by arq (the id still exists) after
the job last looked. Runs of one connection are serialized by an advisory lock instead."""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.inventory.outbox import defer_job

PUSH_JOB = "push_stock"
# Orders arriving together for one shop share one push.
PUSH_DEFER_SECONDS = 0.05

# Row locks in id order, as the push job settles them: two writers never deadlock.
_MARK_PENDING = text(
    "WITH target AS (SELECT l.id FROM marketplace_stock_levels l "
    "JOIN sku_mappings m ON m.listing_id = l.id "
    "WHERE m.master_sku_id = ANY(CAST(:skus AS bigint[])) ORDER BY l.id FOR UPDATE OF l) "
    "UPDATE marketplace_stock_levels AS l SET push_status = 'pending', "
    "push_seq = l.push_seq + 1, push_attempts = 0 FROM target WHERE l.id = target.id "
    "RETURNING l.connection_id"
)
_MARK_LISTINGS_PENDING = text(
    "WITH target AS (SELECT id FROM marketplace_stock_levels "
    "WHERE id = ANY(CAST(:ids AS bigint[])) ORDER BY id FOR UPDATE) "
    "UPDATE marketplace_stock_levels AS l SET push_status = 'pending', "
    "push_seq = l.push_seq + 1, push_attempts = 0 FROM target WHERE l.id = target.id "
    "RETURNING l.connection_id"
)


COALESCE_BUCKETS_PER_SECOND = 20


def push_job_id(connection_id: uuid.UUID | str, at: float | None = None) -> str:
    slot = int((time.time() if at is None else at) * COALESCE_BUCKETS_PER_SECOND)
    return f"{PUSH_JOB}:{connection_id}:{slot}"


def queue_push_jobs(session: AsyncSession, connection_ids: Collection[uuid.UUID]) -> None:
    # The job starts after its time slot ends: a request later in the same slot (whose own
    # job arq refuses, the id being taken) is then still read by it.
    now = time.time()
    slot_end = (int(now * COALESCE_BUCKETS_PER_SECOND) + 1) / COALESCE_BUCKETS_PER_SECOND
    defer = PUSH_DEFER_SECONDS + (slot_end - now)
    for connection_id in connection_ids:
        defer_job(
            session,
            PUSH_JOB,
            str(connection_id),
            job_id=push_job_id(connection_id, now),
            defer_seconds=defer,
        )


async def request_pushes(session: AsyncSession, master_sku_ids: Collection[int]) -> set[uuid.UUID]:
    """Every listing linked to these master SKUs is to be told their new figure."""
    if not master_sku_ids:
        return set()
    rows = await session.execute(_MARK_PENDING, {"skus": sorted(master_sku_ids)})
    connections = {row.connection_id for row in rows}
    queue_push_jobs(session, connections)
    return connections


async def request_listing_pushes(session: AsyncSession, listing_ids: Collection[int]) -> None:
    if not listing_ids:
        return
    rows = await session.execute(_MARK_LISTINGS_PENDING, {"ids": sorted(listing_ids)})
    queue_push_jobs(session, {row.connection_id for row in rows})
