from __future__ import annotations

from app.live.allocation import Claim, allocate


def test_first_come_first_served() -> None:
    queue = [Claim(1, 2, 0), Claim(2, 2, 0), Claim(3, 1, 0)]
    assert allocate(queue, 3) == {1: 2, 2: 1, 3: 0}


def test_an_earlier_claim_takes_units_from_the_latest() -> None:
    # 2 and 3 hold the only two units; 1 (earlier, arrived late) takes 3's.
    queue = [Claim(1, 1, 0), Claim(2, 1, 1), Claim(3, 1, 1)]
    assert allocate(queue, 0) == {1: 1, 2: 1, 3: 0}


def test_a_removed_claim_gives_its_units_to_the_first_waiting() -> None:
    queue = [Claim(1, 0, 2), Claim(2, 1, 0), Claim(3, 2, 0)]
    assert allocate(queue, 0) == {1: 0, 2: 1, 3: 1}


def test_pinned_claims_keep_what_they_hold() -> None:
    queue = [Claim(1, 1, 0), Claim(2, 1, 1, pinned=True)]
    assert allocate(queue, 0) == {1: 0, 2: 1}


def test_never_more_than_held_plus_free() -> None:
    queue = [Claim(i, 3, i % 2) for i in range(10)]
    result = allocate(queue, 4)
    assert sum(result.values()) == 4 + sum(c.reserved for c in queue)
