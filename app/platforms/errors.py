"""The failure classes every marketplace response is sorted into (one table per platform)."""

from __future__ import annotations


class MarketplaceError(Exception):
    """A marketplace call failed. `message` is the platform's own words, never a secret."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        platform: str,
        code: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.platform = platform
        self.code = code
        self.status_code = status_code
        self.request_id = request_id

    def __str__(self) -> str:
        code = f" [{self.code}]" if self.code else ""
        return f"{self.platform}{code}: {self.message}"


class TransientError(MarketplaceError):
    """5xx, time-outs, connection errors, malformed answers: worth another try."""

    retryable = True


class RateLimitedError(MarketplaceError):
    """HTTP 429 or the platform's own rate-limit code; `retry_after` in seconds when known."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class AuthError(MarketplaceError):
    """Access token invalid or expired: refresh once, then the connection needs re-authorization."""


class ReauthRequiredError(AuthError):
    """The refresh was refused (or the platform has none): the seller must re-connect."""


class PermanentError(MarketplaceError):
    """Bad request or missing permission: retrying will not help."""


class HostNotConfigured(PermanentError):
    """The connection was made against another host than the one configured now: no call is
    made with its tokens (app/connections/hosts.py)."""

    def __init__(self, message: str, *, platform: str) -> None:
        super().__init__(message, platform=platform, code="host_not_configured")
