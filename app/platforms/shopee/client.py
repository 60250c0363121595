"""Shopee Open Platform v2 client: orders, products, stock, shop check and token refresh."""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx

from app.platforms.base import (
    ListingKey,
    NormalizedReview,
    OrderFailure,
    OrderPage,
    OrdersRead,
    ReadHint,
    ReviewRef,
    StockResult,
    stock_by_listing,
)
from app.platforms.errors import (
    AuthError,
    MarketplaceError,
    PermanentError,
    ReauthRequiredError,
)
from app.platforms.shopee import reviews as shopee_reviews
from app.platforms.shopee.auth import ShopeeAuth
from app.platforms.shopee.fulfillment import ShopeeFulfillment
from app.platforms.shopee.mapping import (
    PLATFORM,
    OrderMappingError,
    classify_response,
    map_order,
    map_product,
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

logger = logging.getLogger("app.platforms.shopee")

ORDER_LIST = "/api/v2/order/get_order_list"
ORDER_DETAIL = "/api/v2/order/get_order_detail"
ITEM_LIST = "/api/v2/product/get_item_list"
ITEM_BASE_INFO = "/api/v2/product/get_item_base_info"
MODEL_LIST = "/api/v2/product/get_model_list"
UPDATE_STOCK = "/api/v2/product/update_stock"
SHOP_INFO = "/api/v2/shop/get_shop_info"
REFRESH_TOKEN = "/api/v2/auth/access_token/get"

# The fields of get_order_detail that carry buyer, address, items, amounts and payment.
ORDER_DETAIL_FIELDS = (
    "buyer_user_id",
    "buyer_username",
    "recipient_address",
    "item_list",
    "total_amount",
    "estimated_shipping_fee",
    "actual_shipping_fee",
    "actual_shipping_fee_confirmed",
    "pay_time",
    "payment_method",
    "shipping_carrier",
    "note",
    "cancel_by",
    "cancel_reason",
    "buyer_cancel_reason",
)
# Refresh tokens last 30 days (reference §1.4); Shopee's answer does not say so itself.
REFRESH_TOKEN_LIFETIME = timedelta(days=30)


@dataclass(slots=True)
class _Details:
    orders: list[NormalizedOrder] = field(default_factory=list)
    failures: list[OrderFailure] = field(default_factory=list)
    returned: set[str] = field(default_factory=set)  # answered for, read or not


def _whole_seconds_ceil(moment: datetime) -> int:
    return math.ceil(moment.timestamp())


class ShopeeClient(ShopeeFulfillment):
    platform: ClassVar[PlatformCode] = PlatformCode.SHOPEE

    # get_order_list accepts at most 15 days between time_from and time_to.
    order_window: ClassVar[timedelta] = timedelta(days=15)
    list_page_size: ClassVar[int] = 100
    detail_batch_size: ClassVar[int] = 50
    item_page_size: ClassVar[int] = 100
    base_info_batch_size: ClassVar[int] = 50
    stock_batch_size: ClassVar[int] = 50
    # Statuses listed by iter_products; deleted items are left out.
    item_statuses: ClassVar[tuple[str, ...]] = ("NORMAL", "UNLIST", "BANNED", "REVIEWING")
    # Ask for PENDING / pending_terms instead of the pre-migration fallback statuses.
    request_pending_status: ClassVar[bool] = True

    # --- plumbing ------------------------------------------------------------------------

    def _url(self, api_path: str) -> str:
        return self.config.base_url.rstrip("/") + api_path

    @staticmethod
    def _number(value: str, what: str) -> int:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise PermanentError(
                f"The Shopee {what} must be a number", platform=PLATFORM, code="invalid_credentials"
            ) from None

    async def _shop_call(
        self,
        method: str,
        api_path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        classify: Callable[[httpx.Response], dict[str, Any]] = classify_response,
    ) -> dict[str, Any]:
        """A shop-level call with a fresh token; an auth failure refreshes once (base class)."""

        async def send(credentials: Credentials) -> dict[str, Any]:
            auth = ShopeeAuth(
                partner_id=self._number(credentials.api_key, "partner id (apiKey)"),
                partner_key=credentials.api_secret,
                api_path=api_path,
                access_token=credentials.access_token,
                shop_id=self._number(credentials.shop_id, "shop id"),
            )
            return await self.transport.request(
                method,
                self._url(api_path),
                classify=classify,
                params=params,
                json_body=json_body,
                auth=auth,
            )

        return await self._authorized(send)

    @staticmethod
    def _response(payload: Mapping[str, Any], api_path: str) -> Mapping[str, Any]:
        body = payload.get("response")
        if body is None:
            return {}
        if not isinstance(body, Mapping):
            raise PermanentError(
                f"Unexpected answer shape from {api_path}",
                platform=PLATFORM,
                request_id=payload.get("request_id"),
            )
        return body

    # --- shop and tokens -----------------------------------------------------------------

    async def check_shop(self) -> ShopInfo:
        payload = await self._shop_call("GET", SHOP_INFO)
        # get_shop_info answers at the top level, not under `response`.
        name = payload.get("shop_name")
        raw = {k: v for k, v in payload.items() if k not in {"request_id", "error", "message"}}
        # The answer names no shop id: the token is bound to the shop the call was signed for,
        # which Shopee reads as a number ("0409334" is shop 409334).
        shop_id = str(self._number(self.credentials.shop_id, "shop id"))
        return ShopInfo(shop_id=shop_id, name=str(name) if name else None, raw=raw)

    async def refresh_tokens(self, credentials: Credentials) -> TokenPair:
        if not credentials.refresh_token:
            raise ReauthRequiredError(
                "No Shopee refresh token is stored; re-authorize the shop.", platform=PLATFORM
            )
        partner_id = self._number(credentials.api_key, "partner id (apiKey)")
        shop_id = self._number(credentials.shop_id, "shop id")
        auth = ShopeeAuth(
            partner_id=partner_id, partner_key=credentials.api_secret, api_path=REFRESH_TOKEN
        )
        body = {
            "refresh_token": credentials.refresh_token,
            "partner_id": partner_id,
            "shop_id": shop_id,
        }
        try:
            payload = await self.transport.request(
                "POST",
                self._url(REFRESH_TOKEN),
                classify=classify_response,
                json_body=body,
                auth=auth,
            )
        except (AuthError, PermanentError) as exc:
            # Refresh tokens work once and expire: any refusal means the seller re-connects.
            raise ReauthRequiredError(
                exc.message, platform=PLATFORM, code=exc.code, request_id=exc.request_id
            ) from exc
        # The auth endpoints answer at the top level; accept `response` too.
        nested = payload.get("response")
        answer: Mapping[str, Any] = nested if isinstance(nested, dict) else payload
        access, refresh = answer.get("access_token"), answer.get("refresh_token")
        if not access or not refresh:
            raise ReauthRequiredError(
                "Shopee's refresh answer had no tokens",
                platform=PLATFORM,
                request_id=payload.get("request_id"),
            )
        now = datetime.now(UTC)
        expire_in = answer.get("expire_in")
        return TokenPair(
            access_token=str(access),
            refresh_token=str(refresh),
            access_expires_at=now + timedelta(seconds=int(expire_in)) if expire_in else None,
            refresh_expires_at=now + REFRESH_TOKEN_LIFETIME,
        )

    # --- orders --------------------------------------------------------------------------

    def _windows(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        windows = []
        cursor = start
        while cursor < end:
            window_end = min(cursor + self.order_window, end)
            windows.append((cursor, window_end))
            cursor = window_end
        return windows

    async def iter_orders(
        self, updated_from: datetime, updated_to: datetime
    ) -> AsyncIterator[OrderPage]:
        semaphore = asyncio.Semaphore(self.config.tuning.detail_concurrency)
        for window_start, window_end in self._windows(updated_from, updated_to):
            async for page in self._iter_window(window_start, window_end, semaphore):
                yield page

    async def _list_page(self, time_from: int, time_to: int, cursor: str) -> Mapping[str, Any]:
        params = {
            "time_range_field": "update_time",
            "time_from": time_from,
            "time_to": time_to,
            "page_size": self.list_page_size,
            "cursor": cursor,
        }
        return self._response(await self._shop_call("GET", ORDER_LIST, params=params), ORDER_LIST)

    async def _iter_window(
        self, start: datetime, end: datetime, semaphore: asyncio.Semaphore
    ) -> AsyncIterator[OrderPage]:
        """One get_order_list query. Its order is not by update time, so a page may only
        resume from the window's start until the last page is read."""
        # Shopee counts whole seconds with both ends included: [from, to] covers [start, end).
        time_from = _whole_seconds_ceil(start)
        time_to = _whole_seconds_ceil(end) - 1
        if time_to < time_from:
            yield OrderPage(orders=[], resume_from=end)
            return
        pending: deque[tuple[asyncio.Task[OrderPage], bool]] = deque()
        ahead = max(1, self.config.tuning.detail_concurrency)
        seen: set[str] = set()
        cursors: set[str] = set()
        cursor = ""
        try:
            while True:
                body = await self._list_page(time_from, time_to, cursor)
                order_sns = []
                for entry in body.get("order_list") or []:
                    order_sn = str(entry.get("order_sn") or "") if isinstance(entry, dict) else ""
                    if order_sn and order_sn not in seen:
                        seen.add(order_sn)
                        order_sns.append(order_sn)
                more = bool(body.get("more"))
                cursor = str(body.get("next_cursor") or "")
                if more and (not cursor or cursor in cursors):
                    raise PermanentError(
                        "get_order_list gave no new next_cursor with more=true", platform=PLATFORM
                    )
                cursors.add(cursor)
                resume = start if more else end
                task = asyncio.create_task(self._detail_page(order_sns, resume, semaphore))
                pending.append((task, more))
                while pending and (len(pending) > ahead or not more):
                    yield await pending.popleft()[0]
                if not more:
                    return
        finally:
            tasks = [task for task, _ in pending]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _detail_page(
        self, order_sns: Sequence[str], resume_from: datetime, semaphore: asyncio.Semaphore
    ) -> OrderPage:
        batches = [
            order_sns[i : i + self.detail_batch_size]
            for i in range(0, len(order_sns), self.detail_batch_size)
        ]
        results = await asyncio.gather(*(self._detail_batch(b, semaphore) for b in batches))
        page = OrderPage(orders=[], resume_from=resume_from)
        for orders, failures in results:
            page.orders.extend(orders)
            page.failures.extend(failures)
        return page

    async def _fetch_details(
        self, order_sns: Sequence[str], semaphore: asyncio.Semaphore
    ) -> list[Any]:
        params: dict[str, Any] = {
            "order_sn_list": ",".join(order_sns),
            "response_optional_fields": ",".join(ORDER_DETAIL_FIELDS),
        }
        if self.request_pending_status:
            params["request_order_status_pending"] = "true"
        async with semaphore:
            payload = await self._shop_call("GET", ORDER_DETAIL, params=params)
        order_list = self._response(payload, ORDER_DETAIL).get("order_list") or []
        return order_list if isinstance(order_list, list) else []

    async def _detail_batch(
        self, order_sns: Sequence[str], semaphore: asyncio.Semaphore
    ) -> tuple[list[NormalizedOrder], list[OrderFailure]]:
        """Details of up to 50 orders; an order Shopee did not return is a failure too."""
        read = await self._read_details(order_sns, semaphore)
        read.failures.extend(
            OrderFailure(sn, "Shopee did not return this order's details")
            for sn in order_sns
            if sn not in read.returned
        )
        return read.orders, read.failures

    async def _read_details(
        self, order_sns: Sequence[str], semaphore: asyncio.Semaphore
    ) -> _Details:
        """Details of up to 50 orders. A batch Shopee refuses outright is split into single
        orders, so one bad order never costs the others; mapping failures are per order."""
        read = _Details()
        if not order_sns:
            return read
        try:
            raw_orders = await self._fetch_details(order_sns, semaphore)
        except PermanentError as exc:
            if len(order_sns) == 1:
                read.failures.append(OrderFailure(order_sns[0], exc.message))
                read.returned.add(order_sns[0])
                return read
            parts = await asyncio.gather(*(self._read_details([sn], semaphore) for sn in order_sns))
            for part in parts:
                read.orders.extend(part.orders)
                read.failures.extend(part.failures)
                read.returned.update(part.returned)
            return read
        for raw in raw_orders:
            order_sn = str(raw.get("order_sn") or "?") if isinstance(raw, dict) else "?"
            read.returned.add(order_sn)
            try:
                if not isinstance(raw, dict):
                    raise OrderMappingError("order is not an object")
                read.orders.append(map_order(raw))
            except OrderMappingError as exc:
                read.failures.append(OrderFailure(order_sn, str(exc)))
        return read

    async def fetch_orders_by_ids(
        self, external_order_ids: Sequence[str], hint: ReadHint | None = None
    ) -> OrdersRead:
        """`get_order_detail` with 50 order numbers a call, the batches concurrent as in the
        sync (Shopee has no list call that would read them more cheaply)."""
        semaphore = asyncio.Semaphore(self.config.tuning.detail_concurrency)
        ids = list(dict.fromkeys(external_order_ids))
        batches = [
            ids[i : i + self.detail_batch_size] for i in range(0, len(ids), self.detail_batch_size)
        ]
        parts = await asyncio.gather(*(self._read_details(b, semaphore) for b in batches))
        return OrdersRead(
            orders=[order for part in parts for order in part.orders],
            failures=[failure for part in parts for failure in part.failures],
        )

    async def get_orders(self, external_order_ids: Sequence[str]) -> list[NormalizedOrder]:
        semaphore = asyncio.Semaphore(self.config.tuning.detail_concurrency)
        ids = list(dict.fromkeys(external_order_ids))
        batches = [
            ids[i : i + self.detail_batch_size] for i in range(0, len(ids), self.detail_batch_size)
        ]
        results = await asyncio.gather(*(self._detail_batch(b, semaphore) for b in batches))
        orders: list[NormalizedOrder] = []
        for batch_orders, failures in results:
            orders.extend(batch_orders)
            for failure in failures:
                logger.warning(
                    "shopee order skipped",
                    extra={"order_id": failure.external_order_id, "reason": failure.message},
                )
                self.events(
                    "order_failed",
                    {"externalOrderId": failure.external_order_id, "message": failure.message},
                )
        return orders

    # --- products ------------------------------------------------------------------------

    async def iter_products(self) -> AsyncIterator[list[NormalizedProduct]]:
        semaphore = asyncio.Semaphore(self.config.tuning.detail_concurrency)
        offset = 0
        while True:
            params = {
                "offset": offset,
                "page_size": self.item_page_size,
                "item_status": list(self.item_statuses),
            }
            body = self._response(await self._shop_call("GET", ITEM_LIST, params=params), ITEM_LIST)
            item_ids = [
                int(entry["item_id"])
                for entry in body.get("item") or []
                if isinstance(entry, dict) and entry.get("item_id") is not None
            ]
            if item_ids:
                yield await self._products(item_ids, semaphore)
            next_offset = body.get("next_offset")
            if not body.get("has_next_page") or not isinstance(next_offset, int):
                return
            if next_offset <= offset:
                raise PermanentError("get_item_list did not advance its offset", platform=PLATFORM)
            offset = next_offset

    async def _limited(
        self, semaphore: asyncio.Semaphore, api_path: str, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        async with semaphore:
            return await self._shop_call("GET", api_path, params=params)

    async def _products(
        self, item_ids: Sequence[int], semaphore: asyncio.Semaphore
    ) -> list[NormalizedProduct]:
        batches = [
            item_ids[i : i + self.base_info_batch_size]
            for i in range(0, len(item_ids), self.base_info_batch_size)
        ]
        answers = await asyncio.gather(
            *(
                self._limited(semaphore, ITEM_BASE_INFO, {"item_id_list": ",".join(map(str, b))})
                for b in batches
            )
        )
        bases: list[Mapping[str, Any]] = []
        for payload in answers:
            entries = self._response(payload, ITEM_BASE_INFO).get("item_list") or []
            bases.extend(entry for entry in entries if isinstance(entry, dict))
        with_models = [base["item_id"] for base in bases if base.get("has_model")]
        model_answers = await asyncio.gather(
            *(self._limited(semaphore, MODEL_LIST, {"item_id": i}) for i in with_models)
        )
        models = {
            item_id: self._response(payload, MODEL_LIST)
            for item_id, payload in zip(with_models, model_answers, strict=True)
        }
        products = []
        for base in bases:
            try:
                products.append(map_product(base, models.get(base.get("item_id"))))
            except OrderMappingError as exc:
                self.events("product_failed", {"externalProductId": str(base.get("item_id"))})
                logger.warning("shopee item skipped", extra={"reason": str(exc)})
        return products

    # --- reviews (app/platforms/shopee/reviews.py) ------------------------------------------

    def iter_reviews(
        self, external_product_ids: Sequence[str], since: datetime
    ) -> AsyncIterator[list[NormalizedReview]]:
        return shopee_reviews.iter_reviews(self, external_product_ids, since)

    async def reply_review(self, review: ReviewRef, text: str) -> None:
        await shopee_reviews.reply_review(self, review, text)

    # --- stock ---------------------------------------------------------------------------

    async def read_stock(self, updates: Sequence[StockUpdate]) -> dict[ListingKey, int | None]:
        """Only the pushed items: get_item_base_info 50 ids a call, get_model_list per item
        with models (the reference's read-back calls)."""
        ids = {u.external_product_id or "" for u in updates}
        item_ids = sorted(int(item_id) for item_id in ids if item_id.isdigit())
        if not item_ids:
            return {}
        semaphore = asyncio.Semaphore(self.config.tuning.detail_concurrency)
        return stock_by_listing(await self._products(item_ids, semaphore))

    async def _sku_index(self) -> dict[str, tuple[str, str]]:
        index: dict[str, tuple[str, str]] = {}
        async for products in self.iter_products():
            for product in products:
                for variation in product.variations:
                    if variation.sku:
                        index[variation.sku] = (
                            product.external_product_id,
                            variation.external_variation_id or "0",
                        )
        return index

    async def update_stock(self, updates: Sequence[StockUpdate]) -> list[StockResult]:
        """One update_stock call per item (Shopee takes one item_id per call), up to 50 models
        each. Updates without ids are resolved by SKU from the shop's product list."""
        results: dict[int, StockResult] = {}
        index: dict[str, tuple[str, str]] | None = None
        by_item: dict[int, list[tuple[int, int]]] = {}  # item_id -> [(position, model_id)]
        for position, update in enumerate(updates):
            item_id, model_id = update.external_product_id, update.external_variation_id
            if item_id is None:
                if index is None:
                    index = await self._sku_index()
                item_id, model_id = index.get(update.sku) or (None, None)
            if item_id is None:
                results[position] = StockResult(update.sku, False, "SKU not found on Shopee")
                continue
            if update.quantity < 0:
                results[position] = StockResult(update.sku, False, "Stock cannot be negative")
                continue
            try:
                by_item.setdefault(int(item_id), []).append((position, int(model_id or 0)))
            except ValueError:
                results[position] = StockResult(update.sku, False, "Invalid Shopee item/model id")
        for item, entries in by_item.items():
            for i in range(0, len(entries), self.stock_batch_size):
                chunk = entries[i : i + self.stock_batch_size]
                results.update(await self._update_item_stock(item, chunk, updates))
        return [results[position] for position in range(len(updates))]

    async def _update_item_stock(
        self, item_id: int, chunk: Sequence[tuple[int, int]], updates: Sequence[StockUpdate]
    ) -> dict[int, StockResult]:
        body = {
            "item_id": item_id,
            "stock_list": [
                {"model_id": model_id, "seller_stock": [{"stock": updates[position].quantity}]}
                for position, model_id in chunk
            ],
        }
        try:
            payload = await self._shop_call("POST", UPDATE_STOCK, json_body=body)
        except AuthError:
            raise
        except MarketplaceError as exc:
            return {p: StockResult.failed(updates[p].sku, exc) for p, _ in chunk}
        answer = self._response(payload, UPDATE_STOCK)
        succeeded = {
            int(entry["model_id"])
            for entry in answer.get("success_list") or []
            if isinstance(entry, dict) and entry.get("model_id") is not None
        }
        failed = {
            int(entry["model_id"]): str(entry.get("failed_reason") or "Update failed")
            for entry in answer.get("failure_list") or []
            if isinstance(entry, dict) and entry.get("model_id") is not None
        }
        results = {}
        for position, model_id in chunk:
            sku = updates[position].sku
            if model_id in failed:
                results[position] = StockResult(sku, False, failed[model_id])
            elif model_id in succeeded:
                results[position] = StockResult(sku, True)
            else:
                results[position] = StockResult(
                    sku, False, "Shopee did not confirm the update", retryable=True
                )
        return results
