"""The one interface every marketplace client implements, and the token handling they share."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Protocol, TypeVar

import httpx

from app.config import ClientTuning
from app.platforms.errors import (
    AuthError,
    MarketplaceError,
    PermanentError,
    RateLimitedError,
    ReauthRequiredError,
)
from app.platforms.fulfillment import (
    CancelReason,
    LabelFormat,
    LabelResult,
    ShippingOptions,
    ShipRequest,
    ShipResult,
    ShipTarget,
)
from app.platforms.http import (
    EventSink,
    PlatformTransport,
    RateLimiter,
    backoff_delay,
    ignore_events,
    single_attempt,
)
from app.platforms.types import (
    Credentials,
    NormalizedOrder,
    NormalizedProduct,
    PlatformCode,
    ShopInfo,
    StockUpdate,
    TokenPair,
)

# Refresh this long before the platform says the access token expires, so a sync never starts
# a page with a token that dies mid-page.
REFRESH_MARGIN = timedelta(minutes=5)

T = TypeVar("T")

RefreshFn = Callable[[Credentials], Awaitable[TokenPair]]


class TokenStore(Protocol):
    """Where a connection's tokens live. `refresh` must, under a per-connection lock, re-read the
    stored credentials and call `do_refresh` only if the access token is still `stale`; the new
    pair is persisted (committed) before it is returned, since Shopee refresh tokens work once."""

    async def refresh(self, stale: Credentials, do_refresh: RefreshFn) -> Credentials: ...


class MemoryTokenStore:
    """A process-local store for tools and tests; the app uses the database-backed one."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self._lock = asyncio.Lock()
        self.refresh_count = 0

    async def refresh(self, stale: Credentials, do_refresh: RefreshFn) -> Credentials:
        async with self._lock:
            if self.credentials.access_token != stale.access_token:
                return self.credentials
            pair = await do_refresh(self.credentials)
            self.credentials = apply_token_pair(self.credentials, pair)
            self.refresh_count += 1
            return self.credentials


def apply_token_pair(credentials: Credentials, pair: TokenPair) -> Credentials:
    return replace(
        credentials,
        access_token=pair.access_token,
        refresh_token=pair.refresh_token or credentials.refresh_token,
        access_expires_at=pair.access_expires_at,
        refresh_expires_at=pair.refresh_expires_at or credentials.refresh_expires_at,
    )


@dataclass(slots=True)
class ClientConfig:
    base_url: str
    tuning: ClientTuning = field(default_factory=ClientTuning)
    auth_url: str | None = None  # Lazada's token endpoints live on a separate host


@dataclass(slots=True)
class OrderFailure:
    """One order the client could not read or normalize; the sync counts it and carries on."""

    external_order_id: str
    message: str


@dataclass(slots=True)
class OrderPage:
    orders: list[NormalizedOrder]
    # Every order updated before this instant has been yielded by this page or an earlier one,
    # so a sync that dies after committing this page may resume from here.
    resume_from: datetime
    failures: list[OrderFailure] = field(default_factory=list)


@dataclass(slots=True)
class StockResult:
    sku: str
    ok: bool
    message: str | None = None


class MarketplaceClient(ABC):
    platform: ClassVar[PlatformCode]

    def __init__(
        self,
        credentials: Credentials,
        config: ClientConfig,
        *,
        token_store: TokenStore | None = None,
        events: EventSink = ignore_events,
        http_client: httpx.AsyncClient | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.credentials = credentials
        self.config = config
        self.token_store: TokenStore = token_store or MemoryTokenStore(credentials)
        self.events = events
        self.transport = PlatformTransport(
            platform=self.platform.value,
            tuning=config.tuning,
            events=events,
            http_client=http_client,
            limiter=limiter,
        )

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def __aenter__(self) -> MarketplaceClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- what every marketplace provides -------------------------------------------------

    @abstractmethod
    async def check_shop(self) -> ShopInfo:
        """A cheap call proving the credentials work; returns the shop's name where known."""

    @abstractmethod
    def iter_orders(self, updated_from: datetime, updated_to: datetime) -> AsyncIterator[OrderPage]:
        """Every order (all statuses) updated in [updated_from, updated_to), page by page, with
        details and items, normalized."""

    @abstractmethod
    async def get_orders(self, external_order_ids: Sequence[str]) -> list[NormalizedOrder]:
        """Full details of the given orders (webhooks name an order; this reads it)."""

    @abstractmethod
    def iter_products(self) -> AsyncIterator[list[NormalizedProduct]]:
        """Every product of the shop with its variations, SKUs, prices and stock."""

    @abstractmethod
    async def update_stock(self, updates: Sequence[StockUpdate]) -> list[StockResult]:
        """Set sellable stock per SKU; one result per update, never a silent partial success."""

    async def refresh_tokens(self, credentials: Credentials) -> TokenPair:
        """Exchange the refresh token for a new pair. Platforms without one must re-authorize."""
        raise ReauthRequiredError(
            "The access token was rejected and this platform has no refresh token flow; "
            "re-authorize the connection.",
            platform=self.platform.value,
        )

    # --- fulfillment (each platform's fulfillment.py overrides what it serves) ---------------

    def _no_fulfillment(self, what: str) -> PermanentError:
        return PermanentError(
            f"{self.platform.value} does not support {what} here", platform=self.platform.value
        )

    async def shipping_options(self, target: ShipTarget) -> ShippingOptions:
        """What a shipment of this order (or package) needs: methods, addresses, slots."""
        raise self._no_fulfillment("shipping options")

    async def ship(self, targets: Sequence[ShipTarget], request: ShipRequest) -> list[ShipResult]:
        """Arrange shipment of every target, in as few calls as the platform allows; one
        result per target, never a silent partial success."""
        raise self._no_fulfillment("shipping")

    async def tracking_number(self, target: ShipTarget) -> str | None:
        """The carrier's tracking number once the platform has one (None: not yet)."""
        return None

    async def labels(self, targets: Sequence[ShipTarget], fmt: LabelFormat) -> list[LabelResult]:
        """The airway bill of each target as PDF bytes, or not ready yet."""
        raise self._no_fulfillment("shipping labels")

    async def cancel_reasons(self, target: ShipTarget) -> list[CancelReason]:
        raise self._no_fulfillment("cancellation")

    async def cancel_order(self, target: ShipTarget, reason: str) -> None:
        raise self._no_fulfillment("cancellation")

    async def answer_cancellation(self, target: ShipTarget, accept: bool) -> None:
        raise self._no_fulfillment("buyer cancellation requests")

    # --- shared token handling -----------------------------------------------------------

    def _needs_refresh(self) -> bool:
        expires = self.credentials.access_expires_at
        return (
            expires is not None
            and self.credentials.refresh_token is not None
            and expires - REFRESH_MARGIN <= datetime.now(UTC)
        )

    async def _refresh(self, stale: Credentials) -> None:
        """Refresh once for everyone holding `stale`: the store refreshes only if the stored
        token is still the stale one, so concurrent callers never spend a single-use refresh
        token twice."""
        attempt = 0
        while True:
            attempt += 1
            try:
                # The store holds the connection's row lock around this call: one attempt
                # under the lock, and the back-off between attempts outside it.
                with single_attempt():
                    self.credentials = await self.token_store.refresh(stale, self.refresh_tokens)
                break
            except AuthError as exc:
                raise ReauthRequiredError(
                    exc.message, platform=exc.platform, code=exc.code, request_id=exc.request_id
                ) from exc
            except MarketplaceError as exc:
                tuning = self.config.tuning
                if not exc.retryable or attempt >= tuning.max_attempts:
                    raise
                delay = backoff_delay(attempt, tuning)
                if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
                    delay = max(delay, exc.retry_after)
                if delay > tuning.max_wait_seconds:
                    raise
                self.events("retry", {"reason": "token_refresh", "error": str(exc)})
                await asyncio.sleep(delay)
        if self.credentials.access_token != stale.access_token:
            self.events("token_refreshed", {"platform": self.platform.value})

    def _can_refresh(self) -> bool:
        overridden = type(self).refresh_tokens is not MarketplaceClient.refresh_tokens
        return overridden and self.credentials.refresh_token is not None

    async def _authorized(self, call: Callable[[Credentials], Awaitable[T]]) -> T:
        """Run a shop-level call with a fresh token; on an auth failure refresh once and retry."""
        if self._needs_refresh():
            await self._refresh(self.credentials)
        used = self.credentials
        try:
            return await call(used)
        except ReauthRequiredError:
            raise
        except AuthError as exc:
            if not self._can_refresh():
                # Nothing to refresh with: only the seller can fix this.
                raise ReauthRequiredError(
                    exc.message,
                    platform=exc.platform,
                    code=exc.code,
                    status_code=exc.status_code,
                    request_id=exc.request_id,
                ) from exc
            await self._refresh(used)
            return await call(self.credentials)
