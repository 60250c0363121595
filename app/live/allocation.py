"""First come, first served: who holds a live product's units, recomputed from the queue.

The outcome depends only on the queue (lines in comment-time order) and the units the
product may hold, never on the order events arrived in: a late webhook for an earlier
comment takes its place in the queue and the units move to it from the latest lines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Claim:
    key: int
    requested: int  # 0 for a line that was removed
    reserved: int
    # A paid order's line keeps what it holds; it is served outside the queue.
    pinned: bool = False


def allocate(queue: Sequence[Claim], free: int) -> dict[int, int]:
    """Units each claim holds after serving the queue in order from what the unpinned claims
    hold plus `free` more (a claim asking for more than remains takes the rest and waits)."""
    result = {c.key: c.reserved for c in queue if c.pinned}
    pool = max(0, free) + sum(c.reserved for c in queue if not c.pinned)
    for claim in queue:
        if claim.pinned:
            continue
        given = min(max(0, claim.requested), pool)
        result[claim.key] = given
        pool -= given
    return result
