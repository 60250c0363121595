"""Login throttling: at most AUTH_LOGIN_MAX_FAILURES failed logins within
AUTH_LOGIN_WINDOW_SECONDS per e-mail and per client address (a sliding window in Redis).

Every attempt takes a slot in both windows atomically before the password is checked, so a
burst of parallel guesses cannot overshoot the limit. A success gives its slot back to the
address and clears the account's window; the address's earlier failures stay counted, so one
valid account does not let an address reset its count while guessing others."""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis

# KEYS: the windows (sorted sets scored by time); ARGV: now, window, limit, member.
# Answers the seconds to wait ("0" when the attempt was admitted and recorded in every window).
_ADMIT = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local wait = 0
for _, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if count >= limit then
    local freed = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    local seconds = tonumber(freed[2]) + window - now
    if seconds > wait then wait = seconds end
  end
end
if wait > 0 then return tostring(wait) end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[4])
  redis.call('EXPIRE', key, math.ceil(window))
end
return '0'
"""


@dataclass(frozen=True, slots=True)
class Attempt:
    account_key: str
    address_key: str
    member: str


class LoginThrottle:
    def __init__(self, redis: Redis, *, max_failures: int, window_seconds: int) -> None:
        self.redis = redis
        self.max_failures = max_failures
        self.window_seconds = window_seconds

    async def admit(self, email: str, address: str) -> Attempt | int:
        """The attempt, recorded as a failure until `succeeded`; or the seconds to wait."""
        # The e-mail is hashed so Redis never holds addresses of people (or guesses).
        account = hashlib.sha256(email.encode()).hexdigest()
        attempt = Attempt(
            f"login-failures:account:{account}",
            f"login-failures:address:{address}",
            uuid.uuid4().hex,
        )
        wait = await self.redis.eval(  # type: ignore[misc]
            _ADMIT,
            2,
            attempt.account_key,
            attempt.address_key,
            repr(time.time()),
            str(self.window_seconds),
            str(self.max_failures),
            attempt.member,
        )
        seconds = float(wait.decode() if isinstance(wait, bytes) else wait)
        if seconds > 0:
            return max(1, math.ceil(seconds))
        return attempt

    async def succeeded(self, attempt: Attempt) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(attempt.account_key)
            pipe.zrem(attempt.address_key, attempt.member)
            await pipe.execute()
