"""Lazada Open Platform (Thailand) client: orders, products, stock, seller check and tokens.

Values the reference leaves unconfirmed are class attributes, so a deployment can change them
without a code change: `items_batch_size` (ids per `/orders/items/get`), `products_page_size`,
`sort_by` / `sort_direction` of `/orders/get`, and `stock_batch_size` (Lazada says at most 50,
20 recommended).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar, cast
from xml.sax.saxutils import escape

from app.platforms.base import (
    ListingKey,
    NormalizedReview,
    OrderFailure,
    OrderPage,
    OrdersRead,
    ReadHint,
    ReviewRef,
    StockResult,
    WindowListing,
    stock_by_listing,
)
from app.platforms.errors import (
    AuthError,
    MarketplaceError,
    PermanentError,
    ReauthRequiredError,
)
from app.platforms.lazada import reviews as lazada_reviews
from app.platforms.lazada.auth import LazadaAuth
from app.platforms.lazada.fulfillment import LazadaFulfillment
from app.platforms.lazada.mapping import (
    PLATFORM,
    LazadaMappingError,
    LazadaPermanentError,
    classify_response,
    map_order,
    map_product,
    order_id_of,
    parse_time,
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

DEFAULT_AUTH_URL = "https://auth.lazada.com/rest"
ORDERS_PAGE_SIZE = 100  # the documented maximum of `/orders/get`
# Offsets above 5000 are refused. Whether rows past offset+limit=5000 are served is not
# documented, so the client never asks for them and moves the window instead.
MAX_OFFSET = 5000
EARLIEST = datetime(2012, 1, 1, tzinfo=UTC)  # before Lazada's first order
_SECOND = timedelta(seconds=1)
_NOT_FOUND_CODES = frozenset({"16", "E016"})  # "Invalid Order ID" (legacy code; unconfirmed)
_MAPPING_ERRORS = (LazadaMappingError, KeyError, TypeError, ValueError, ArithmeticError)

T = TypeVar("T")
Row = dict[str, Any]


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


def _ceil(moment: datetime) -> datetime:
    floor = _floor(moment)
    return floor if floor == moment else floor + _SECOND


def _orders_of(payload: Mapping[str, Any]) -> list[Row]:
    data = payload.get("data")
    orders = data.get("orders") if isinstance(data, Mapping) else None
    return [o for o in orders if isinstance(o, dict)] if isinstance(orders, list) else []


def _count_total(payload: Mapping[str, Any]) -> int | None:
    data = payload.get("data")
    value = data.get("countTotal") if isinstance(data, Mapping) else None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


@dataclass(slots=True)
class _Listed:
    orders: list[Row]
    failures: list[OrderFailure]
    resume_from: datetime


@dataclass(slots=True)
class _Outcome:
    complete: bool = False
    reason: str = ""  # "cap": the offset limit was reached; "shift": the list moved under us
    last_ts: datetime | None = None


@dataclass
class _OrderLister:
    """Lists `/orders/get` over [start, end) in updated_at order, moving the window when the
    offset limit is reached.

    - Each follow-up page starts one row early; when that row is not the last one seen, an
      order updated during the sync has shifted the list, and the window is restarted at the
      last time seen (offset paging alone would silently skip a row).
    - A new window starts one second before the last update time seen (times are whole
      seconds; `update_after` may be inclusive or exclusive), orders already seen there are
      skipped by (id, updated_at).
    - When a window cannot advance (more than 5000 orders in one second), that second is read
      in half-open slices of creation time (bisected with `created_after`/`created_before`,
      sized by `countTotal`) and the window then starts after it. A slice of one creation
      second still over the limit raises `PermanentError` rather than skip orders.
    """

    client: LazadaClient
    start: datetime
    end: datetime  # orders at or after this are left out
    resume: datetime = field(init=False)
    seen: dict[str, datetime] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.resume = self.start

    async def pages(self) -> AsyncGenerator[_Listed]:
        window = _floor(self.start)
        query_end = _ceil(self.end)
        restarts = 0
        while True:
            outcome = _Outcome()
            async for listed in self._scan(window, query_end, self.end, outcome, main=True):
                yield listed
            if outcome.complete:
                return
            if outcome.last_ts is None:
                raise PermanentError(
                    "Lazada returned a full page of orders without readable update times",
                    platform=PLATFORM,
                )
            anchor = outcome.last_ts - _SECOND
            if anchor > window:
                window, restarts = anchor, 0
            elif outcome.reason == "shift" and restarts < 3:
                restarts += 1
            else:
                upper = outcome.last_ts + _SECOND
                async for listed in self._by_creation(window, upper):
                    yield listed
                window = upper
                self.resume = max(self.resume, min(upper, self.end))
            self.seen = {oid: ts for oid, ts in self.seen.items() if ts >= window}

    async def _by_creation(self, lower: datetime, upper: datetime) -> AsyncIterator[_Listed]:
        ranges = [(EARLIEST, upper)]
        bound = min(upper, self.end)
        while ranges:
            created = ranges.pop()
            outcome = _Outcome()
            async for listed in self._scan(lower, upper, bound, outcome, created=created):
                yield listed
            if outcome.complete:
                continue
            c0, c1 = created
            if c1 - c0 <= _SECOND:
                raise PermanentError(
                    f"More than {MAX_OFFSET} Lazada orders share update time {_iso(lower)} and "
                    "creation time; they cannot be paged",
                    platform=PLATFORM,
                )
            mid = _floor(c0 + (c1 - c0) / 2)
            # Half-open slices: created_after inclusive, created_before exclusive (assumed, as
            # for the update bounds; an inclusive `before` only repeats orders, which are skipped).
            ranges += [(mid, c1), (c0, mid)]

    async def _scan(
        self,
        lower: datetime,
        query_end: datetime,
        bound: datetime,
        outcome: _Outcome,
        *,
        main: bool = False,
        created: tuple[datetime, datetime] | None = None,
    ) -> AsyncIterator[_Listed]:
        client = self.client
        offset = 0
        previous_last: str | None = None
        previous_ts: datetime | None = None
        while True:
            payload = await client._orders_page(lower, query_end, offset, created)
            rows = _orders_of(payload)
            if created is not None and offset == 0:
                total = _count_total(payload)
                if total is not None and total > MAX_OFFSET - client.orders_page_size:
                    outcome.reason = "cap"
                    return
            fetched = len(rows)
            if previous_last is not None:
                if not rows or str(rows[0].get("order_id")) != previous_last:
                    outcome.reason = "shift"
                    return
                rows = rows[1:]
            fresh: list[Row] = []
            failures: list[OrderFailure] = []
            for row in rows:
                try:
                    oid = order_id_of(row)
                    ts = parse_time(row.get("updated_at"))
                except LazadaMappingError as exc:
                    failures.append(OrderFailure(str(row.get("order_id") or "?"), str(exc)))
                    continue
                if previous_ts is not None and ts < previous_ts:
                    raise PermanentError(
                        "Lazada did not sort orders by update time; cannot page safely",
                        platform=PLATFORM,
                    )
                previous_ts = ts
                if ts >= bound:
                    outcome.complete = True
                    break
                if outcome.last_ts is None or ts > outcome.last_ts:
                    outcome.last_ts = ts
                if self.seen.get(oid) == ts:
                    continue
                self.seen[oid] = ts
                fresh.append(row)
            if fetched < client.orders_page_size:
                outcome.complete = True
            if main:
                if outcome.last_ts is not None:
                    self.resume = max(self.resume, outcome.last_ts)
                if outcome.complete:
                    self.resume = self.end
            if fresh or failures or (main and outcome.complete):
                yield _Listed(fresh, failures, self.resume)
            if outcome.complete:
                return
            previous_last = str(rows[-1].get("order_id")) if rows else previous_last
            offset += fetched - 1
            if offset > MAX_OFFSET - client.orders_page_size:
                outcome.reason = "cap"
                return


class LazadaClient(LazadaFulfillment):
    platform: ClassVar[PlatformCode] = PlatformCode.LAZADA

    orders_page_size: ClassVar[int] = ORDERS_PAGE_SIZE
    items_batch_size: ClassVar[int] = 50  # max ids per `/orders/items/get`: unconfirmed
    products_page_size: ClassVar[int] = 50  # unconfirmed
    stock_batch_size: ClassVar[int] = 20  # "maximum 50, but 20 is recommended"
    sort_by: ClassVar[str] = "updated_at"  # values third-party only
    sort_direction: ClassVar[str] = "ASC"
    # `/review/seller/history/list`: windows of at most 7 days, none older than 90 days.
    review_window_days: ClassVar[int] = 7
    review_history_days: ClassVar[int] = 90

    # --- calls ---------------------------------------------------------------------------

    async def _call(
        self, method: str, api_path: str, params: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """One seller call, signed per attempt, refreshed once on an auth failure."""
        url = self.config.base_url.rstrip("/") + api_path

        async def run(credentials: Credentials) -> dict[str, Any]:
            auth = LazadaAuth(
                credentials.api_key, credentials.api_secret, api_path, credentials.access_token
            )
            if method == "GET":
                return await self.transport.request(
                    "GET", url, classify=classify_response, params=params, auth=auth
                )
            return await self.transport.request(
                method, url, classify=classify_response, data=params, auth=auth
            )

        return await self._authorized(run)

    async def _orders_page(
        self,
        after: datetime,
        before: datetime,
        offset: int,
        created: tuple[datetime, datetime] | None = None,
    ) -> dict[str, Any]:
        params = {
            "update_after": _iso(after),
            "update_before": _iso(before),
            "status": "all",
            "sort_by": self.sort_by,
            "sort_direction": self.sort_direction,
            "offset": str(offset),
            "limit": str(self.orders_page_size),
        }
        if created is not None:
            params["created_after"], params["created_before"] = map(_iso, created)
        return await self._call("GET", "/orders/get", params)

    async def _items(
        self, ids: Sequence[str], limit: asyncio.Semaphore
    ) -> tuple[dict[str, list[Row]], dict[str, str]]:
        """Item rows per order id, and the ids Lazada refused with its reason. A refused batch
        is asked again order by order, so one bad order does not fail its neighbours."""
        async with limit:
            return await self._items_unlimited(ids)

    async def _items_unlimited(
        self, ids: Sequence[str]
    ) -> tuple[dict[str, list[Row]], dict[str, str]]:
        try:
            payload = await self._call(
                "GET", "/orders/items/get", {"order_ids": f"[{','.join(ids)}]"}
            )
        except PermanentError as exc:
            if len(ids) == 1:
                return {}, {ids[0]: exc.message}
            rows: dict[str, list[Row]] = {}
            refused: dict[str, str] = {}
            for order_id in ids:
                found, failed = await self._items_unlimited([order_id])
                rows.update(found)
                refused.update(failed)
            return rows, refused
        rows = {}
        data = payload.get("data")
        for entry in data if isinstance(data, list) else []:
            if isinstance(entry, dict) and entry.get("order_id") is not None:
                items = entry.get("order_items")
                rows[str(entry["order_id"])] = (
                    [r for r in items if isinstance(r, dict)] if isinstance(items, list) else []
                )
        return rows, {}

    async def _items_for(
        self, ids: Sequence[str], limit: asyncio.Semaphore
    ) -> tuple[dict[str, list[Row]], dict[str, str]]:
        """Rows per order id, batches concurrently; ids of refused batches with the reason."""
        batches = list(_chunks(ids, self.items_batch_size))
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._items(batch, limit)) for batch in batches]
        rows: dict[str, list[Row]] = {}
        refused: dict[str, str] = {}
        for task in tasks:
            found, failed = task.result()
            rows.update(found)
            refused.update(failed)
        return rows, refused

    def _normalize(
        self, orders: Sequence[Row], rows: Mapping[str, list[Row]], refused: Mapping[str, str]
    ) -> tuple[list[NormalizedOrder], list[OrderFailure]]:
        normalized: list[NormalizedOrder] = []
        failures: list[OrderFailure] = []
        for order in orders:
            oid = str(order.get("order_id"))
            if oid in refused:
                failures.append(OrderFailure(oid, f"Items not readable: {refused[oid]}"))
                continue
            items = rows.get(oid)
            if not items:
                failures.append(OrderFailure(oid, "Lazada returned no items for this order"))
                continue
            try:
                normalized.append(map_order(order, items))
            except _MAPPING_ERRORS as exc:
                failures.append(OrderFailure(oid, f"Unreadable order: {exc}"))
        return normalized, failures

    # --- orders --------------------------------------------------------------------------

    async def _complete(self, listed: _Listed, limit: asyncio.Semaphore) -> OrderPage:
        ids = [str(o["order_id"]) for o in listed.orders]
        rows, refused = await self._items_for(ids, limit) if ids else ({}, {})
        orders, failures = self._normalize(listed.orders, rows, refused)
        return OrderPage(orders, listed.resume_from, listed.failures + failures)

    async def iter_orders(
        self, updated_from: datetime, updated_to: datetime
    ) -> AsyncIterator[OrderPage]:
        """Pages in updated_at order; item batches of the next pages are fetched while the
        current one waits to be consumed. The last page carries `resume_from = updated_to`."""
        if updated_from >= updated_to:
            return
        limit = asyncio.Semaphore(self.config.tuning.detail_concurrency)
        ahead = self.config.tuning.detail_concurrency
        pending: deque[asyncio.Task[OrderPage]] = deque()
        try:
            async for listed in _OrderLister(self, updated_from, updated_to).pages():
                pending.append(asyncio.create_task(self._complete(listed, limit)))
                while len(pending) > ahead or (pending and pending[0].done()):
                    yield await pending.popleft()
            while pending:
                yield await pending.popleft()
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def get_orders(self, external_order_ids: Sequence[str]) -> list[NormalizedOrder]:
        ids = list(dict.fromkeys(str(i) for i in external_order_ids))
        limit = asyncio.Semaphore(self.config.tuning.detail_concurrency)
        answers = await asyncio.gather(*(self._get_order(i, limit) for i in ids))
        found = [o for o in answers if o is not None]
        rows, refused = await self._items_for([str(o.get("order_id")) for o in found], limit)
        orders, failures = self._normalize(found, rows, refused)
        for failure in failures:
            self.events(
                "order_failed",
                {"externalOrderId": failure.external_order_id, "message": failure.message},
            )
        return orders

    async def _get_order(self, order_id: str, limit: asyncio.Semaphore) -> Row | None:
        """One order by id (`/order/get`); None when Lazada does not know it."""
        async with limit:
            try:
                payload = await self._call("GET", "/order/get", {"order_id": order_id})
            except PermanentError as exc:
                if exc.code in _NOT_FOUND_CODES or "invalid order id" in exc.message.lower():
                    return None
                raise
        data = payload.get("data")
        return data if isinstance(data, dict) and data else None

    async def _open_listing(self, since: datetime) -> WindowListing[Row]:
        """`/orders/get` from `since` to now in updated_at order (the sync's own lister);
        rows it could not read are kept as failures, and a window that cannot be paged ends
        the listing (what is left is read by id)."""
        failures: dict[str, OrderFailure] = {}
        until = max(datetime.now(UTC) + _SECOND, since + _SECOND)

        async def pages() -> AsyncGenerator[list[Row]]:
            lister = _OrderLister(self, since, until).pages()
            try:
                async for listed in lister:
                    failures.update({f.external_order_id: f for f in listed.failures})
                    yield listed.orders
            except PermanentError:
                return
            finally:
                await lister.aclose()

        def updated_at(row: Row) -> datetime:
            try:
                return parse_time(row.get("updated_at"))
            except LazadaMappingError as exc:
                raise ValueError(str(exc)) from exc

        return WindowListing(
            since,
            pages(),
            order_id=lambda row: str(row.get("order_id")),
            updated_at=updated_at,
            context={"failures": failures},
        )

    async def _scan_window(
        self, wanted: Sequence[str], hint: ReadHint
    ) -> tuple[dict[str, Row], list[OrderFailure]]:
        """The wanted orders found in the update window from `hint.updated_since` (100 a
        page), and those listed but unreadable."""
        assert hint.updated_since is not None
        listing = await self._window_listing(hint.updated_since, self._open_listing)
        found = await listing.find(wanted, hint.changed_at)
        failures = cast(dict[str, OrderFailure], listing.context["failures"])
        return found, [failures[i] for i in wanted if i in failures and i not in found]

    async def fetch_orders_by_ids(
        self, external_order_ids: Sequence[str], hint: ReadHint | None = None
    ) -> OrdersRead:
        """As the sync reads: `/orders/get` by update window from `hint.updated_since`, paged
        until every id is found; then the items of up to 50 orders per `/orders/items/get`;
        `/order/get` only for an id the window did not return."""
        ids = list(dict.fromkeys(str(i) for i in external_order_ids))
        limit = asyncio.Semaphore(self.config.tuning.detail_concurrency)
        found: dict[str, Row] = {}
        failures: list[OrderFailure] = []
        if hint is not None and hint.updated_since is not None and ids:
            found, failures = await self._scan_window(ids, hint)
        answered = set(found) | {f.external_order_id for f in failures}
        rest = [i for i in ids if i not in answered]
        for order_id, row in zip(
            rest, await asyncio.gather(*(self._get_order(i, limit) for i in rest)), strict=True
        ):
            if row is not None:
                found[order_id] = row
        rows, refused = await self._items_for(list(found), limit)
        orders, item_failures = self._normalize(list(found.values()), rows, refused)
        return OrdersRead(orders=orders, failures=failures + item_failures)

    # --- products and stock --------------------------------------------------------------

    async def iter_products(self) -> AsyncIterator[list[NormalizedProduct]]:
        async for page in self._product_pages({"filter": "all"}):
            yield page

    async def read_stock(self, updates: Sequence[StockUpdate]) -> dict[ListingKey, int | None]:
        """Only the pushed SKUs: `/products/get` filtered by `sku_seller_list`, a page of
        SKUs a call."""
        skus = sorted({u.sku for u in updates if u.sku})
        stock: dict[ListingKey, int | None] = {}
        for chunk in _chunks(skus, self.products_page_size):
            params = {"filter": "all", "sku_seller_list": json.dumps(list(chunk))}
            async for page in self._product_pages(params):
                stock.update(stock_by_listing(page))
        return stock

    async def _product_pages(
        self, params: Mapping[str, str]
    ) -> AsyncIterator[list[NormalizedProduct]]:
        offset = 0
        while True:
            payload = await self._call(
                "GET",
                "/products/get",
                {**params, "offset": str(offset), "limit": str(self.products_page_size)},
            )
            data = payload.get("data")
            raw = data.get("products") if isinstance(data, Mapping) else None
            products = [p for p in raw if isinstance(p, dict)] if isinstance(raw, list) else []
            page: list[NormalizedProduct] = []
            for product in products:
                try:
                    page.append(map_product(product))
                except _MAPPING_ERRORS as exc:
                    self.events(
                        "product_failed",
                        {"externalProductId": str(product.get("item_id")), "message": str(exc)},
                    )
            if page:
                yield page
            offset += len(products)
            total = data.get("total_products") if isinstance(data, Mapping) else None
            if len(products) < self.products_page_size or (
                total is not None and offset >= int(total)
            ):
                return

    async def update_stock(self, updates: Sequence[StockUpdate]) -> list[StockResult]:
        """UpdateSellableQuantity, one XML payload per batch. A batch Lazada refuses
        naming some SKUs in `detail` is resent without them (setting stock is idempotent)."""
        results: dict[int, StockResult] = {}
        indexed = list(enumerate(updates))
        for number, batch in enumerate(_chunks(indexed, self.stock_batch_size)):
            try:
                await self._stock_batch(list(batch), results)
            except ReauthRequiredError as exc:
                for index, update in indexed[number * self.stock_batch_size :]:
                    results[index] = StockResult.failed(update.sku, exc)
                break
        return [results[index] for index, _ in indexed]

    async def _stock_batch(
        self, batch: list[tuple[int, StockUpdate]], results: dict[int, StockResult]
    ) -> None:
        try:
            await self._call(
                "POST", SELLABLE_QUANTITY_UPDATE, {"payload": stock_payload([u for _, u in batch])}
            )
        except ReauthRequiredError:
            raise
        except MarketplaceError as exc:
            reasons: dict[str, str] = {}
            if isinstance(exc, LazadaPermanentError):
                for row in exc.detail:
                    sku = row.get("seller_sku") or row.get("SellerSku")
                    if sku:
                        reasons[str(sku)] = str(row.get("message") or exc.message)
            named = [(i, u) for i, u in batch if u.sku in reasons]
            if named:
                # Lazada named these SKUs: a refusal of the items, not of the call.
                for index, update in named:
                    results[index] = StockResult(update.sku, False, reasons[update.sku])
            else:
                for index, update in batch:
                    results[index] = StockResult.failed(update.sku, exc, str(exc))
            if named and len(named) < len(batch):
                await self._stock_batch([b for b in batch if b[1].sku not in reasons], results)
            return
        for index, update in batch:
            results[index] = StockResult(update.sku, True)

    # --- reviews (app/platforms/lazada/reviews.py) ------------------------------------------

    def iter_reviews(
        self, external_product_ids: Sequence[str], since: datetime
    ) -> AsyncIterator[list[NormalizedReview]]:
        return lazada_reviews.iter_reviews(self, external_product_ids, since)

    async def reply_review(self, review: ReviewRef, text: str) -> None:
        await lazada_reviews.reply_review(self, review, text)

    # --- shop and tokens -----------------------------------------------------------------

    async def check_shop(self) -> ShopInfo:
        payload = await self._call("GET", "/seller/get")
        data = payload.get("data")
        seller = data if isinstance(data, dict) else {}
        name = seller.get("name")
        return ShopInfo(
            shop_id=str(seller.get("seller_id") or self.credentials.shop_id),
            name=str(name) if name else None,
            raw=seller,
        )

    async def refresh_tokens(self, credentials: Credentials) -> TokenPair:
        """`/auth/token/refresh` on the auth host, signed without an access token. Lazada
        refresh tokens stay valid until they expire; the new pair is used from now on."""
        if not credentials.refresh_token:
            raise ReauthRequiredError(
                "No Lazada refresh token; re-authorize the connection.", platform=PLATFORM
            )
        api_path = "/auth/token/refresh"
        url = (self.config.auth_url or DEFAULT_AUTH_URL).rstrip("/") + api_path
        auth = LazadaAuth(credentials.api_key, credentials.api_secret, api_path)
        try:
            payload = await self.transport.request(
                "POST",
                url,
                classify=classify_response,
                data={"refresh_token": credentials.refresh_token},
                auth=auth,
            )
        except (AuthError, PermanentError) as exc:
            raise ReauthRequiredError(
                exc.message,
                platform=PLATFORM,
                code=exc.code,
                status_code=exc.status_code,
                request_id=exc.request_id,
            ) from exc
        return token_pair(payload)


def token_pair(payload: Mapping[str, Any]) -> TokenPair:
    access = payload.get("access_token")
    if not access:
        raise ReauthRequiredError("Lazada's refresh answer had no access token", platform=PLATFORM)
    now = datetime.now(UTC)

    def after(key: str) -> datetime | None:
        try:
            return now + timedelta(seconds=int(payload[key]))
        except (KeyError, TypeError, ValueError):
            return None

    refresh = payload.get("refresh_token")
    return TokenPair(
        access_token=str(access),
        refresh_token=str(refresh) if refresh else None,
        access_expires_at=after("expires_in"),
        refresh_expires_at=after("refresh_expires_in"),
    )


# UpdateSellableQuantity overwrites what the channel may still sell; UpdatePriceQuantity would
# set the total, which also holds the units of open orders (reference §6, stock calls).
SELLABLE_QUANTITY_UPDATE = "/product/stock/sellable/update"


def stock_payload(updates: Sequence[StockUpdate]) -> str:
    """The XML `payload` of UpdateSellableQuantity: Request/Product/Skus/Sku with ItemId,
    SkuId, SellerSku and SellableQuantity (the element names are the reference's; the XML form
    is the documented-era one, unconfirmed for this call)."""
    skus = []
    for update in updates:
        parts = []
        if update.external_product_id:
            parts.append(f"<ItemId>{escape(update.external_product_id)}</ItemId>")
        if update.external_variation_id:
            parts.append(f"<SkuId>{escape(update.external_variation_id)}</SkuId>")
        parts.append(f"<SellerSku>{escape(update.sku)}</SellerSku>")
        parts.append(f"<SellableQuantity>{int(update.quantity)}</SellableQuantity>")
        skus.append(f"<Sku>{''.join(parts)}</Sku>")
    return f"<Request><Product><Skus>{''.join(skus)}</Skus></Product></Request>"
