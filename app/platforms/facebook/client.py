"""Meta Commerce (Facebook Shop) client on the Graph API.

`shop_id` is the Facebook Page id, `api_key` the app id, `api_secret` the app secret (for
`appsecret_proof`), `access_token` a long-lived Page or system-user token. Orders live on the
Page's commerce account (commerce merchant settings, "cms"). Sync is read-only: nothing here
acknowledges or changes an order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, ClassVar, TypeVar, cast

import httpx

from app.platforms.base import (
    ClientConfig,
    ListingKey,
    OrderFailure,
    OrderPage,
    OrdersRead,
    ReadHint,
    StockResult,
    TokenStore,
    WindowListing,
    stock_by_listing,
)
from app.platforms.errors import (
    AuthError,
    MarketplaceError,
    PermanentError,
    ReauthRequiredError,
)
from app.platforms.facebook.auth import GraphAuth
from app.platforms.facebook.fulfillment import FacebookFulfillment
from app.platforms.facebook.mapping import (
    ALL_STATES,
    OrderMappingError,
    classify_response,
    edge_data,
    graph_time,
    inline_items_complete,
    map_order,
    map_products,
    order_state,
    usage_retry_after,
)
from app.platforms.http import EventSink, RateLimiter, ignore_events
from app.platforms.types import (
    Credentials,
    NormalizedOrder,
    NormalizedProduct,
    PlatformCode,
    ShopInfo,
    StockUpdate,
)

T = TypeVar("T")
logger = logging.getLogger("app.platforms.facebook")

ITEM_FIELDS = "id,retailer_id,product_id,product_name,quantity,price_per_unit,tax_details"
ORDER_FIELDS = ",".join(
    (
        "id",
        "order_status",
        "created",
        "last_updated",
        f"items{{{ITEM_FIELDS}}}",
        "ship_by_date",
        "merchant_order_id",
        "channel",
        "selected_shipping_option",
        "shipping_address",
        "estimated_payment_details",
        "buyer_details",
        "is_test_order",
    )
)
PRODUCT_FIELDS = (
    "id,retailer_id,name,price,currency,availability,visibility,inventory,"
    "quantity_to_sell_on_facebook,retailer_product_group_id,product_group{id,retailer_id}"
)
# Graph answers for an id that does not exist or is not visible to the token.
_MISSING_CODES = frozenset({"100/33", "803"})


class OrderUnreadable(PermanentError):
    """Meta returned the order, but it cannot be normalized."""


class FacebookClient(FacebookFulfillment):
    platform: ClassVar[PlatformCode] = PlatformCode.FACEBOOK

    # Graph's usual maximum page size; Meta documents none for commerce_orders (unconfirmed).
    page_size: ClassVar[int] = 100
    stock_batch_size: ClassVar[int] = 1000  # items_batch takes up to 5000 requests
    batch_status_polls: ClassVar[int] = 5
    batch_status_interval_seconds: ClassVar[float] = 1.0

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
        super().__init__(
            credentials,
            config,
            token_store=token_store,
            events=events,
            http_client=http_client,
            limiter=limiter,
        )
        # The Page's commerce account and catalog, looked up once per client.
        self._cms_id: str | None = None
        self._catalog_id: str | None = None
        self._lookup_lock = asyncio.Lock()

    # --- transport -----------------------------------------------------------------------

    def _classify(self, response: httpx.Response) -> dict[str, Any]:
        payload = classify_response(response)
        wait = usage_retry_after(response.headers)
        if wait:
            # Usage at the cap on a successful answer: slow down before Meta starts refusing.
            self.transport.limiter.pause(wait)
            self.events("rate_limit_pause", {"seconds": wait})
        return payload

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        expires = self.credentials.access_expires_at
        if expires is not None and expires <= datetime.now(UTC):
            raise ReauthRequiredError(
                "The Meta access token has expired; re-authorize the connection.",
                platform=self.platform.value,
                code="190/463",
            )
        url = f"{self.config.base_url.rstrip('/')}/{path.lstrip('/')}"

        async def call(credentials: Credentials) -> dict[str, Any]:
            return await self.transport.request(
                method,
                url,
                classify=self._classify,
                params=params,
                data=data,
                auth=GraphAuth(credentials.access_token, credentials.api_secret),
            )

        # Meta has no refresh token: the base class turns a rejected token into re-authorization.
        return await self._authorized(call)

    async def _pages(
        self, path: str, params: Mapping[str, Any]
    ) -> AsyncGenerator[tuple[list[dict[str, Any]], bool]]:
        """(data, is_last) per page. Only the `after` cursor is used: the `next` URL carries
        the token and proof, so it serves solely as the "more pages" signal."""
        after: str | None = None
        while True:
            query = dict(params)
            if after is not None:
                query["after"] = after
            payload = await self._call("GET", path, params=query)
            data = edge_data(payload)
            paging = payload.get("paging")
            paging = paging if isinstance(paging, dict) else {}
            cursors = paging.get("cursors")
            cursors = cursors if isinstance(cursors, dict) else {}
            following = cursors.get("after") if data and "next" in paging else None
            if following is not None and str(following) == after:
                raise PermanentError(
                    f"Graph paging cursor did not advance on {path}", platform=self.platform.value
                )
            yield data, following is None
            if following is None:
                return
            after = str(following)

    async def _gather_limited(
        self, jobs: Sequence[Callable[[], Awaitable[T]]]
    ) -> list[T | BaseException]:
        semaphore = asyncio.Semaphore(self.config.tuning.detail_concurrency)

        async def run(job: Callable[[], Awaitable[T]]) -> T:
            async with semaphore:
                return await job()

        return await asyncio.gather(*(run(job) for job in jobs), return_exceptions=True)

    # --- lookups -------------------------------------------------------------------------

    async def commerce_account_id(self) -> str:
        """The Page's commerce merchant settings id, looked up once per client."""
        async with self._lookup_lock:
            if self._cms_id is None:
                payload = await self._call(
                    "GET",
                    f"{self.credentials.shop_id}/commerce_merchant_settings",
                    params={"fields": "id"},
                )
                accounts = edge_data(payload)
                if not accounts or not accounts[0].get("id"):
                    raise PermanentError(
                        "This Facebook Page has no commerce account "
                        "(commerce_merchant_settings is empty); set up a shop in Commerce "
                        "Manager first.",
                        platform=self.platform.value,
                    )
                self._cms_id = str(accounts[0]["id"])
            return self._cms_id

    async def catalog_id(self) -> str:
        cms = await self.commerce_account_id()
        async with self._lookup_lock:
            if self._catalog_id is None:
                payload = await self._call(
                    "GET", f"{cms}/product_catalogs", params={"fields": "id,name"}
                )
                catalogs = edge_data(payload)
                if not catalogs or not catalogs[0].get("id"):
                    raise PermanentError(
                        "The commerce account has no product catalog.",
                        platform=self.platform.value,
                    )
                self._catalog_id = str(catalogs[0]["id"])
            return self._catalog_id

    # --- shop ----------------------------------------------------------------------------

    async def check_shop(self) -> ShopInfo:
        # With a Page token, /me is the token's own Page; /{page-id} would answer for any Page
        # (its public fields), proving nothing about whose token this is. An expired or
        # revoked token fails this call with 190 -> ReauthRequiredError.
        page = await self._call("GET", "me", params={"fields": "id,name"})
        page_id = str(page.get("id") or "")
        if not page_id:
            raise PermanentError(
                "Meta's /me named no Page: use a Page access token", platform=self.platform.value
            )
        # Another Page's token: the caller reports whose it is; its commerce account is moot.
        cms = await self.commerce_account_id() if page_id == self.credentials.shop_id else None
        name = page.get("name")
        return ShopInfo(
            shop_id=page_id,
            name=str(name) if name else None,
            raw={"id": page.get("id"), "name": name, "commerce_merchant_settings_id": cms},
        )

    # --- orders --------------------------------------------------------------------------

    @staticmethod
    def _window(updated_from: datetime, updated_to: datetime) -> dict[str, int]:
        # Unix seconds (legacy docs; the SDK says "datetime": unconfirmed). One second of
        # overlap at the start covers an exclusive `updated_after`; duplicates are harmless.
        return {
            "updated_after": math.floor(updated_from.timestamp()) - 1,
            "updated_before": math.ceil(updated_to.timestamp()),
        }

    async def _ids_with(self, cms: str, window: Mapping[str, int], filters: str) -> set[str]:
        params = {
            **window,
            "state": "COMPLETED",
            "filters": filters,
            "fields": "id",
            "limit": self.page_size,
        }
        found: set[str] = set()
        async for data, _ in self._pages(f"{cms}/commerce_orders", params):
            found.update(str(o["id"]) for o in data if o.get("id") is not None)
        return found

    async def _all_items(self, order_id: str) -> list[dict[str, Any]]:
        params = {"fields": ITEM_FIELDS, "limit": self.page_size}
        items: list[dict[str, Any]] = []
        async for data, _ in self._pages(f"{order_id}/items", params):
            items.extend(data)
        return items

    async def _with_items(
        self, orders: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[OrderFailure]]:
        """Orders whose inline items are missing or paged get them from the /items edge."""
        todo = [i for i, o in enumerate(orders) if not inline_items_complete(o) and o.get("id")]
        if not todo:
            return orders, []
        results = await self._gather_limited(
            [partial(self._all_items, str(orders[i]["id"])) for i in todo]
        )
        complete = list(orders)
        failed: set[int] = set()
        failures: list[OrderFailure] = []
        for index, result in zip(todo, results, strict=True):
            if isinstance(result, AuthError):
                raise result
            if isinstance(result, BaseException):
                if not isinstance(result, MarketplaceError):
                    raise result
                failed.add(index)
                failures.append(OrderFailure(str(orders[index]["id"]), f"items: {result}"))
                continue
            complete[index] = {**orders[index], "items": {"data": result}}
        return [o for i, o in enumerate(complete) if i not in failed], failures

    @staticmethod
    def _map(
        raws: list[dict[str, Any]], cancelled: set[str], refunded: set[str]
    ) -> tuple[list[NormalizedOrder], list[OrderFailure]]:
        orders, failures = [], []
        for raw in raws:
            order_id = str(raw.get("id", "?"))
            try:
                orders.append(
                    map_order(
                        raw, fully_cancelled=order_id in cancelled, refunded=order_id in refunded
                    )
                )
            except OrderMappingError as exc:
                failures.append(OrderFailure(order_id, str(exc)))
        return orders, failures

    async def iter_orders(
        self, updated_from: datetime, updated_to: datetime
    ) -> AsyncIterator[OrderPage]:
        cms = await self.commerce_account_id()
        window = self._window(updated_from, updated_to)
        cancelled = await self._ids_with(cms, window, "NO_SHIPMENTS")
        refunded = await self._ids_with(cms, window, "HAS_REFUNDS")
        params = {
            **window,
            # Without `state` Meta returns CREATED orders only.
            "state": ",".join(ALL_STATES),
            "fields": ORDER_FIELDS,
            "limit": self.page_size,
        }
        async for data, last in self._pages(f"{cms}/commerce_orders", params):
            raws, failures = await self._with_items(data)
            orders, mapping_failures = self._map(raws, cancelled, refunded)
            yield OrderPage(
                orders=orders,
                # Meta does not promise any order of results: only the whole range counts.
                resume_from=updated_to if last else updated_from,
                failures=failures + mapping_failures,
            )

    async def _edge_not_empty(self, order_id: str, edge: str) -> bool:
        payload = await self._call("GET", f"{order_id}/{edge}", params={"fields": "id", "limit": 1})
        return bool(edge_data(payload))

    async def _read_order(self, order_id: str) -> NormalizedOrder | None:
        try:
            raw = await self._call("GET", order_id, params={"fields": ORDER_FIELDS})
        except PermanentError as exc:
            if exc.code in _MISSING_CODES:
                return None
            raise
        if not inline_items_complete(raw):
            raw = {**raw, "items": {"data": await self._all_items(order_id)}}
        cancelled = refunded = False
        if order_state(raw).upper() == "COMPLETED":
            cancelled = not await self._edge_not_empty(order_id, "shipments")
            refunded = await self._edge_not_empty(order_id, "refunds")
        try:
            return map_order(raw, fully_cancelled=cancelled, refunded=refunded)
        except OrderMappingError as exc:
            raise OrderUnreadable(f"order {order_id}: {exc}", platform=self.platform.value) from exc

    async def get_orders(self, external_order_ids: Sequence[str]) -> list[NormalizedOrder]:
        results = await self._gather_limited(
            [partial(self._read_order, str(oid)) for oid in external_order_ids]
        )
        orders: list[NormalizedOrder] = []
        for order_id, result in zip(external_order_ids, results, strict=True):
            if isinstance(result, OrderUnreadable):
                # One unreadable order is that order's failure, not the shop's: reported (the
                # sync keeps it for retry with these words) and skipped, as Shopee and Lazada do.
                logger.warning(
                    "facebook order skipped", extra={"order_id": order_id, "reason": str(result)}
                )
                self.events("order_failed", {"externalOrderId": order_id, "message": str(result)})
            elif isinstance(result, BaseException):
                raise result
            elif result is not None:
                orders.append(result)
        return orders

    async def _open_listing(self, since: datetime) -> WindowListing[dict[str, Any]]:
        """`commerce_orders` from `since` to now, all states and full fields, as the sync
        lists them."""
        cms = await self.commerce_account_id()
        window = self._window(since, max(datetime.now(UTC), since))
        params = {
            **window,
            "state": ",".join(ALL_STATES),
            "fields": ORDER_FIELDS,
            "limit": self.page_size,
        }

        async def pages() -> AsyncGenerator[list[dict[str, Any]]]:
            listing = self._pages(f"{cms}/commerce_orders", params)
            try:
                async for data, _ in listing:
                    yield data
            finally:
                await listing.aclose()

        def updated_at(raw: dict[str, Any]) -> datetime:
            try:
                return graph_time(raw.get("last_updated"))
            except OrderMappingError as exc:
                raise ValueError(str(exc)) from exc

        return WindowListing(
            since,
            pages(),
            order_id=lambda raw: str(raw.get("id")),
            updated_at=updated_at,
            context={"cms": cms, "window": window},
        )

    async def _flags(self, listing: WindowListing[dict[str, Any]]) -> tuple[set[str], set[str]]:
        """The window's cancelled and refunded ids, listed once per window."""
        flags = listing.context.get("flags")
        if flags is None:
            cms = str(listing.context["cms"])
            window = cast(dict[str, int], listing.context["window"])
            flags = listing.context["flags"] = (
                await self._ids_with(cms, window, "NO_SHIPMENTS"),
                await self._ids_with(cms, window, "HAS_REFUNDS"),
            )
        return cast(tuple[set[str], set[str]], flags)

    async def fetch_orders_by_ids(
        self, external_order_ids: Sequence[str], hint: ReadHint | None = None
    ) -> OrdersRead:
        """As the sync reads: `commerce_orders` by update window from `hint.updated_since`
        (Graph has no multi-id read of orders), the window's cancelled and refunded ids only
        when a completed order is among them, then one read per id the window did not
        return."""
        ids = list(dict.fromkeys(str(i) for i in external_order_ids))
        read = OrdersRead()
        found: dict[str, dict[str, Any]] = {}
        if hint is not None and hint.updated_since is not None and ids:
            listing = await self._window_listing(hint.updated_since, self._open_listing)
            found = await listing.find(ids, hint.changed_at)
            raws, read.failures = await self._with_items(list(found.values()))
            cancelled: set[str] = set()
            refunded: set[str] = set()
            if any(order_state(raw).upper() == "COMPLETED" for raw in raws):
                cancelled, refunded = await self._flags(listing)
            read.orders, mapping_failures = self._map(raws, cancelled, refunded)
            read.failures += mapping_failures
        rest = [i for i in ids if i not in found]
        results = await self._gather_limited([partial(self._read_order, i) for i in rest])
        for order_id, result in zip(rest, results, strict=True):
            if isinstance(result, OrderUnreadable):
                read.failures.append(OrderFailure(order_id, result.message))
            elif isinstance(result, BaseException):
                raise result
            elif result is not None:
                read.orders.append(result)
        return read

    # --- products and stock --------------------------------------------------------------

    async def iter_products(self) -> AsyncIterator[list[NormalizedProduct]]:
        catalog = await self.catalog_id()
        items: list[dict[str, Any]] = []
        params = {"fields": PRODUCT_FIELDS, "limit": self.page_size}
        async for data, _ in self._pages(f"{catalog}/products", params):
            items.extend(data)
        # Variants of one product may sit on different pages, so group once at the end.
        products = map_products(items)
        for start in range(0, len(products), self.page_size):
            yield products[start : start + self.page_size]

    async def read_stock(self, updates: Sequence[StockUpdate]) -> dict[ListingKey, int | None]:
        """Only the pushed items: the catalog's products edge filtered by retailer id (the
        seller SKU), a page of ids a call."""
        skus = sorted({u.sku for u in updates if u.sku})
        if not skus:
            return {}
        catalog = await self.catalog_id()
        items: list[dict[str, Any]] = []
        for start in range(0, len(skus), self.page_size):
            rule = {"retailer_id": {"is_any": skus[start : start + self.page_size]}}
            params = {"fields": PRODUCT_FIELDS, "limit": self.page_size, "filter": json.dumps(rule)}
            async for data, _ in self._pages(f"{catalog}/products", params):
                items.extend(data)
        return stock_by_listing(map_products(items))

    async def update_stock(self, updates: Sequence[StockUpdate]) -> list[StockResult]:
        results: dict[int, StockResult] = {}
        valid: list[tuple[int, StockUpdate]] = []
        for index, update in enumerate(updates):
            if update.quantity < 0 or not update.sku:
                results[index] = StockResult(update.sku, False, "quantity must be >= 0 with a SKU")
            else:
                valid.append((index, update))
        if valid:
            catalog = await self.catalog_id()
            for start in range(0, len(valid), self.stock_batch_size):
                chunk = valid[start : start + self.stock_batch_size]
                results.update(await self._stock_batch(catalog, chunk))
        return [results[i] for i in range(len(updates))]

    async def _stock_batch(
        self, catalog: str, chunk: list[tuple[int, StockUpdate]]
    ) -> dict[int, StockResult]:
        requests = [
            {"method": "UPDATE", "data": {"id": u.sku, "quantity_to_sell_on_facebook": u.quantity}}
            for _, u in chunk
        ]
        try:
            payload = await self._call(
                "POST",
                f"{catalog}/items_batch",
                data={
                    "item_type": "PRODUCT_ITEM",
                    # Never create a catalog item from a stock push for an unknown SKU.
                    "allow_upsert": "false",
                    "requests": json.dumps(requests),
                },
            )
        except ReauthRequiredError:
            raise
        except MarketplaceError as exc:
            return {i: StockResult.failed(u.sku, exc) for i, u in chunk}
        rejected = _validation_errors(payload)
        handles = payload.get("handles")
        handle = str(handles[0]) if isinstance(handles, list) and handles else None
        invalid: dict[str, str] = {}
        finished = False
        if handle is not None:
            finished, invalid = await self._batch_outcome(catalog, handle)
        out: dict[int, StockResult] = {}
        for index, update in chunk:
            if update.sku in rejected:
                out[index] = StockResult(update.sku, False, rejected[update.sku])
            elif handle is None:
                out[index] = StockResult(
                    update.sku, False, "Meta ingested nothing (no handle)", retryable=True
                )
            elif update.sku in invalid:
                out[index] = StockResult(update.sku, False, invalid[update.sku])
            elif not finished:
                out[index] = StockResult(
                    update.sku,
                    False,
                    "Meta has not finished the batch; stock not confirmed",
                    retryable=True,
                )
            else:
                out[index] = StockResult(update.sku, True)
        return out

    async def _batch_outcome(self, catalog: str, handle: str) -> tuple[bool, dict[str, str]]:
        """(finished, {retailer id: error}) from check_batch_request_status."""
        for attempt in range(self.batch_status_polls):
            if attempt:
                await asyncio.sleep(self.batch_status_interval_seconds)
            payload = await self._call(
                "GET",
                f"{catalog}/check_batch_request_status",
                params={"handle": handle, "load_ids_of_invalid_requests": "true"},
            )
            statuses = edge_data(payload)
            status = statuses[0] if statuses else {}
            if str(status.get("status", "")).lower() != "finished":
                continue
            invalid: dict[str, str] = {}
            for error in status.get("errors") or []:
                if isinstance(error, dict) and error.get("id") is not None:
                    invalid[str(error["id"])] = str(error.get("message") or "rejected by Meta")
            for item_id in status.get("ids_of_invalid_requests") or []:
                invalid.setdefault(str(item_id), "rejected by Meta")
            return True, invalid
        return False, {}


def _validation_errors(payload: Mapping[str, Any]) -> dict[str, str]:
    rejected: dict[str, str] = {}
    for entry in payload.get("validation_status") or []:
        if not isinstance(entry, dict):
            continue
        errors = [e for e in entry.get("errors") or [] if isinstance(e, dict)]
        if errors and entry.get("retailer_id") is not None:
            rejected[str(entry["retailer_id"])] = "; ".join(
                str(e.get("message") or "rejected") for e in errors
            )
    return rejected
