"""The one retry policy: which failures are worth another try, and how long to wait.

Every job and every marketplace client asks this module; nothing else computes a back-off."""

from __future__ import annotations

import random
from dataclasses import dataclass

from redis.exceptions import ConnectionError as RedisConnectionError

from app.config import ClientTuning
from app.platforms.errors import RateLimitedError, TransientError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_seconds: float = 0.5
    cap_seconds: float = 30.0
    max_attempts: int = 6
    # A platform asking for a longer wait than this fails the attempt instead of parking a job.
    max_wait_seconds: float = 300.0

    @classmethod
    def from_tuning(cls, tuning: ClientTuning) -> RetryPolicy:
        return cls(
            base_seconds=tuning.backoff_base_seconds,
            cap_seconds=tuning.backoff_cap_seconds,
            max_attempts=tuning.max_attempts,
            max_wait_seconds=tuning.max_wait_seconds,
        )

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt `attempt + 1` (attempts count from 1): capped
        exponential back-off with full jitter, never shorter than the platform's Retry-After."""
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** max(0, attempt - 1))
        wait = random.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait

    def delay_for(self, error: BaseException, attempt: int) -> float:
        retry_after = error.retry_after if isinstance(error, RateLimitedError) else None
        return self.delay(attempt, retry_after)

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """Transient and rate-limited failures, while attempts remain and the platform's wait
        is one we are willing to hold for."""
        if attempt >= self.max_attempts or not is_transient(error):
            return False
        retry_after = error.retry_after if isinstance(error, RateLimitedError) else None
        return retry_after is None or retry_after <= self.max_wait_seconds


def is_transient(error: BaseException) -> bool:
    """A marketplace's transient or rate-limit failure, or our own infrastructure blinking
    (the database or Redis unreachable for a moment): worth another try."""
    if isinstance(error, TransientError | RateLimitedError | RedisConnectionError):
        return True
    from app.errors import is_database_unavailable  # the errors module is heavy; only here

    return is_database_unavailable(error)
