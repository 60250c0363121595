"""The one interface every marketplace client implements, and the token handling they share."""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Generic, Protocol, TypeVar

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
    # A platform's own settings its client reads (TikTok's API version per endpoint).
    options: Mapping[str, str] = field(default_factory=dict)


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


@dataclass(frozen=True, slots=True)
class ReadHint:
    """What pushes tell about the orders they name. `updated_since`: none of them changed
    before this instant (the oldest push's time minus the sync's overlap), so a platform that
    lists by update window can read them with its list call instead of one call per order.
    A client may keep what it listed for its next call (a drain's later passes)."""

    updated_since: datetime | None = None
    # Per order, when the push says it changed: a row listed earlier than that is stale.
    changed_at: Mapping[str, datetime] = field(default_factory=dict)


@dataclass(slots=True)
class OrdersRead:
    """Orders read by id: those normalized, and those the platform returned but that could
    not be used (its words). An id in neither was not returned at all (not visible yet)."""

    orders: list[NormalizedOrder] = field(default_factory=list)
    failures: list[OrderFailure] = field(default_factory=list)


R = TypeVar("R")


@dataclass
class WindowListing(Generic[R]):
    """An update-window listing of raw orders that a client continues across calls, so a
    drain's later passes use the rows already listed instead of listing them again. A row is
    used for a push only when at least as new as the push says; a stale one is read by id."""

    since: datetime
    pages: AsyncGenerator[list[R]]
    order_id: Callable[[R], str]
    updated_at: Callable[[R], datetime]  # raises ValueError on an unreadable time
    rows: dict[str, R] = field(default_factory=dict)
    context: dict[str, object] = field(default_factory=dict)  # the platform's own extras
    done: bool = False

    async def find(self, wanted: Sequence[str], changed_at: Mapping[str, datetime]) -> dict[str, R]:
        """The wanted rows, listing further while any is missing, but no more pages than
        reading the missing ones one by one would cost calls."""
        found: dict[str, R] = {}

        def take(order_id: str) -> bool:
            row = self.rows.get(order_id)
            if row is None:
                return False
            changed = changed_at.get(order_id)
            try:
                fresh = changed is None or self.updated_at(row) >= changed
            except ValueError:
                fresh = False
            if fresh:
                found[order_id] = row
            return True  # listed: a stale row is read by id, not searched for again

        missing = {order_id for order_id in wanted if not take(order_id)}
        pages = 0
        while missing and not self.done and pages < len(missing):
            try:
                page = await anext(self.pages)
            except StopAsyncIteration:
                self.done = True
                break
            pages += 1
            for row in page:
                order_id = self.order_id(row)
                self.rows[order_id] = row
                if order_id in missing and take(order_id):
                    missing.discard(order_id)
        return found

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.pages.aclose()


@dataclass(slots=True)
class StockResult:
    sku: str
    ok: bool
    message: str | None = None
    # A failure worth another try later (an outage, a rate limit, a batch not yet confirmed),
    # unlike a refusal of the item itself, which no retry fixes.
    retryable: bool = False
    retry_after: float | None = None

    @classmethod
    def failed(cls, sku: str, error: MarketplaceError, message: str | None = None) -> StockResult:
        """The update of `sku` failed with `error`, in the platform's words."""
        return cls(
            sku,
            False,
            message or error.message,
            retryable=error.retryable,
            retry_after=error.retry_after if isinstance(error, RateLimitedError) else None,
        )


ListingKey = tuple[str, str]  # (external product id, external variation id or "")


def stock_by_listing(products: Sequence[NormalizedProduct]) -> dict[ListingKey, int | None]:
    return {
        (product.external_product_id, variation.external_variation_id or ""): variation.stock
        for product in products
        for variation in product.variations
    }


@dataclass(slots=True)
class ReviewReply:
    text: str
    at: datetime | None  # None where the platform does not say when


@dataclass(slots=True)
class NormalizedReview:
    """A buyer's review of one product, as every platform's reviews module maps it."""

    external_review_id: str
    external_product_id: str
    rating: int | None  # 1-5 stars; None for a follow-up review without its own rating
    text: str
    created_at: datetime
    buyer_name: str | None = None
    external_variation_id: str | None = None
    external_order_id: str | None = None
    reply: ReviewReply | None = None
    # False where the platform says the seller can no longer reply (None: not said).
    can_reply: bool | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ReviewRef:
    """What a reply call needs to name a stored review."""

    external_review_id: str
    external_product_id: str


class ReviewsNotSupported(PermanentError):
    """This platform has no review API (Facebook, see docs/reviews.md)."""


class ReviewReplyRefused(PermanentError):
    """The platform refused the reply itself (already replied, too long, reply period over);
    `message` is the platform's own words."""


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

    # The update-window listing kept for the next `fetch_orders_by_ids`, and those replaced.
    _listing: WindowListing[Any] | None = None
    _replaced: tuple[WindowListing[Any], ...] = ()

    async def _window_listing(
        self, since: datetime, open_listing: Callable[[datetime], Awaitable[WindowListing[R]]]
    ) -> WindowListing[R]:
        """The listing this client holds when it covers `since` and has not reached its end
        (it lists up to when it was opened: later changes need a new one), else a new one."""
        listing = self._listing
        if listing is None or since < listing.since or listing.done:
            if listing is not None:
                self._replaced = (*self._replaced, listing)
            listing = self._listing = await open_listing(since)
        return listing

    async def aclose(self) -> None:
        listings = [*self._replaced, *([self._listing] if self._listing else [])]
        self._listing, self._replaced = None, ()
        for listing in listings:
            await listing.aclose()
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

    async def fetch_orders_by_ids(
        self, external_order_ids: Sequence[str], hint: ReadHint | None = None
    ) -> OrdersRead:
        """The given orders read in bulk with the sync's own calls (pushes name orders; this
        reads a batch of them). Platforms override it; this fallback reads them by id."""
        return OrdersRead(orders=await self.get_orders(external_order_ids))

    @abstractmethod
    def iter_products(self) -> AsyncIterator[list[NormalizedProduct]]:
        """Every product of the shop with its variations, SKUs, prices and stock."""

    @abstractmethod
    async def update_stock(self, updates: Sequence[StockUpdate]) -> list[StockResult]:
        """Set sellable stock per SKU; one result per update, never a silent partial success."""

    async def read_stock(self, updates: Sequence[StockUpdate]) -> dict[ListingKey, int | None]:
        """The stock the platform shows now for the listings of `updates` (the read-back of a
        push), keyed by (product id, variation id or ""). Platforms that read single items
        override this; the fallback reads the whole catalogue."""
        stock: dict[ListingKey, int | None] = {}
        async for page in self.iter_products():
            stock.update(stock_by_listing(page))
        return stock

    # --- product reviews (app/platforms/<marketplace>/reviews.py; docs/reviews.md) -------

    def iter_reviews(
        self, external_product_ids: Sequence[str], since: datetime
    ) -> AsyncIterator[list[NormalizedReview]]:
        """Buyers' reviews of the given products, page by page, created at or after `since`
        where the platform can filter by time (older ones may come too)."""
        raise ReviewsNotSupported(
            f"{self.platform.value} has no product review API", platform=self.platform.value
        )

    async def reply_review(self, review: ReviewRef, text: str) -> None:
        """Post the seller's one reply to a review; the platform's refusal raises
        `ReviewReplyRefused` with its own words."""
        raise ReviewsNotSupported(
            f"{self.platform.value} does not take replies to reviews",
            platform=self.platform.value,
        )

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
