"""TikTok Shop client (reference fulfillment-and-tiktok.md §4): orders, products, stock, the
shop check and tokens. Every path carries its API version from the settings
(`TIKTOK_VERSION_*`, `ClientConfig.options`); the shop APIs carry the shop's `shop_cipher`,
read once from `/authorization/{v}/shops` (it never changes for a shop)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from app.platforms.base import (
    ListingKey,
    OrderFailure,
    OrderPage,
    OrdersRead,
    ReadHint,
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
from app.platforms.tiktok.auth import TikTokAuth
from app.platforms.tiktok.fulfillment import TikTokFulfillment
from app.platforms.tiktok.mapping import (
    PLATFORM,
    classify_response,
    data_of,
    map_order,
    map_product,
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
from app.platforms.values import MappingError

DEFAULT_AUTH_URL = "https://auth.tiktok-shops.com"
DEFAULT_VERSION = "202309"
_MAPPING_ERRORS = (MappingError, KeyError, TypeError, ValueError, ArithmeticError)
Row = dict[str, Any]

# The cipher of each shop, by (API host, shop id): read once per process.
_CIPHERS: dict[tuple[str, str], str] = {}


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _epoch(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp())


class TikTokClient(TikTokFulfillment):
    platform: ClassVar[PlatformCode] = PlatformCode.TIKTOK

    orders_page_size: ClassVar[int] = 100  # documented maximum of Search Orders
    detail_batch_size: ClassVar[int] = 50  # Get Order Detail: `ids` max 50
    products_page_size: ClassVar[int] = 100
    sku_filter_size: ClassVar[int] = 10  # `sku_ids[]` / `seller_skus[]` at most 10

    # --- calls ---------------------------------------------------------------------------

    def version(self, name: str) -> str:
        return self.config.options.get(name) or DEFAULT_VERSION

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        shop: bool = True,
    ) -> dict[str, Any]:
        """One signed call (the token in its header), refreshed once on an expired token.
        Shop APIs get the shop's cipher."""
        query = dict(params or {})
        if shop:
            query["shop_cipher"] = await self.shop_cipher()
        url = self.config.base_url.rstrip("/") + path

        async def run(credentials: Credentials) -> dict[str, Any]:
            auth = TikTokAuth(credentials.api_key, credentials.api_secret, credentials.access_token)
            return await self.transport.request(
                method,
                url,
                classify=classify_response,
                params=query,
                json_body=body if method != "GET" else None,
                auth=auth,
            )

        return await self._authorized(run)

    async def _authorized_shops(self) -> list[Row]:
        payload = await self._call(
            "GET", f"/authorization/{self.version('shops')}/shops", shop=False
        )
        shops = data_of(payload).get("shops")
        return [s for s in shops if isinstance(s, dict)] if isinstance(shops, list) else []

    async def shop_cipher(self) -> str:
        if self.credentials.shop_cipher:
            return self.credentials.shop_cipher
        key = (self.config.base_url, self.credentials.shop_id)
        cipher = _CIPHERS.get(key)
        if cipher is None:
            for shop in await self._authorized_shops():
                if str(shop.get("id")) == self.credentials.shop_id and shop.get("cipher"):
                    cipher = str(shop["cipher"])
            if cipher is None:
                raise PermanentError(
                    f"TikTok Shop did not authorize shop {self.credentials.shop_id} for this "
                    "token; re-authorize the shop",
                    platform=PLATFORM,
                )
            _CIPHERS[key] = cipher
        return cipher

    # --- shop and tokens -----------------------------------------------------------------

    async def check_shop(self) -> ShopInfo:
        shops = await self._authorized_shops()
        if not shops:
            raise PermanentError("TikTok Shop named no authorized shop", platform=PLATFORM)
        wanted = self.credentials.shop_id
        shop = next((s for s in shops if str(s.get("id")) == wanted), shops[0])
        cipher = str(shop.get("cipher") or "") or None
        pasted = self.credentials.shop_cipher
        if pasted and cipher and pasted != cipher:
            raise PermanentError(
                f"shopCipher {pasted} is not the cipher TikTok Shop gives shop {shop.get('id')}; "
                "leave shopCipher empty to have it read",
                platform=PLATFORM,
            )
        if cipher:
            _CIPHERS[(self.config.base_url, str(shop.get("id")))] = cipher
            self.credentials = replace(self.credentials, shop_cipher=cipher)
        name = shop.get("name")
        return ShopInfo(shop_id=str(shop.get("id")), name=str(name) if name else None, raw=shop)

    async def refresh_tokens(self, credentials: Credentials) -> TokenPair:
        """`/api/v2/token/refresh` on the auth host (unsigned; app key and secret in the
        query). Whether a refresh token works once is unconfirmed: the returned one is kept."""
        if not credentials.refresh_token:
            raise ReauthRequiredError(
                "No TikTok Shop refresh token; re-authorize the connection.", platform=PLATFORM
            )
        url = (self.config.auth_url or DEFAULT_AUTH_URL).rstrip("/") + "/api/v2/token/refresh"
        try:
            payload = await self.transport.request(
                "GET",
                url,
                classify=classify_response,
                params={
                    "app_key": credentials.api_key,
                    "app_secret": credentials.api_secret,
                    "refresh_token": credentials.refresh_token,
                    "grant_type": "refresh_token",
                },
            )
        except (AuthError, PermanentError) as exc:
            raise ReauthRequiredError(
                exc.message, platform=PLATFORM, code=exc.code, request_id=exc.request_id
            ) from exc
        return token_pair(payload)

    # --- orders --------------------------------------------------------------------------

    def _normalize(self, rows: Sequence[Row]) -> tuple[list[NormalizedOrder], list[OrderFailure]]:
        orders: list[NormalizedOrder] = []
        failures: list[OrderFailure] = []
        for row in rows:
            try:
                orders.append(map_order(row))
            except _MAPPING_ERRORS as exc:
                failures.append(OrderFailure(str(row.get("id") or "?"), f"Unreadable order: {exc}"))
        return orders, failures

    async def _search_page(
        self, updated_from: datetime, updated_to: datetime, page_token: str | None
    ) -> Mapping[str, Any]:
        params = {
            "page_size": str(self.orders_page_size),
            "sort_field": "update_time",
            "sort_order": "ASC",
        }
        if page_token:
            params["page_token"] = page_token
        body = {"update_time_ge": _epoch(updated_from), "update_time_lt": _epoch(updated_to)}
        payload = await self._call(
            "POST",
            f"/order/{self.version('orders_search')}/orders/search",
            params=params,
            body=body,
        )
        return data_of(payload)

    async def iter_orders(
        self, updated_from: datetime, updated_to: datetime
    ) -> AsyncIterator[OrderPage]:
        """Search Orders by update time, oldest first, `page_token` paging; each row is a
        full order (no detail calls). Times are whole seconds: the window is widened to them
        and rows outside [updated_from, updated_to) are left to their own window."""
        if updated_from >= updated_to:
            return
        start = updated_from.replace(microsecond=0)
        end = updated_to.replace(microsecond=0) + (
            timedelta(seconds=1) if updated_to.microsecond else timedelta(0)
        )
        token: str | None = None
        resume = updated_from
        while True:
            data = await self._search_page(start, end, token)
            raw = data.get("orders")
            rows = [r for r in raw if isinstance(r, dict)] if isinstance(raw, list) else []
            orders, failures = self._normalize(rows)
            orders = [o for o in orders if updated_from <= o.updated_at < updated_to]
            token = str(data.get("next_page_token") or "") or None
            if token is None:
                yield OrderPage(orders, updated_to, failures)
                return
            if orders:
                # Rows sharing the last time may continue on the next page.
                resume = max(resume, max(o.updated_at for o in orders))
            yield OrderPage(orders, resume, failures)

    async def _details(self, ids: Sequence[str]) -> list[Row]:
        limit = asyncio.Semaphore(self.config.tuning.detail_concurrency)

        async def batch(chunk: Sequence[str]) -> list[Row]:
            async with limit:
                payload = await self._call(
                    "GET",
                    f"/order/{self.version('order_detail')}/orders",
                    params={"ids": ",".join(chunk)},
                )
            raw = data_of(payload).get("orders")
            return [r for r in raw if isinstance(r, dict)] if isinstance(raw, list) else []

        pages = await asyncio.gather(
            *(batch(c) for c in _chunks(list(ids), self.detail_batch_size))
        )
        return [row for page in pages for row in page]

    async def get_orders(self, external_order_ids: Sequence[str]) -> list[NormalizedOrder]:
        ids = list(dict.fromkeys(str(i) for i in external_order_ids))
        orders, failures = self._normalize(await self._details(ids) if ids else [])
        for failure in failures:
            self.events(
                "order_failed",
                {"externalOrderId": failure.external_order_id, "message": failure.message},
            )
        return orders

    async def _open_listing(self, since: datetime) -> WindowListing[Row]:
        """Search Orders from `since` to now by update time (the sync's own call, 100 full
        orders a page)."""
        until = datetime.now(UTC) + timedelta(seconds=1)
        start = since.replace(microsecond=0)

        async def pages() -> AsyncGenerator[list[Row]]:
            token: str | None = None
            while True:
                data = await self._search_page(start, until, token)
                raw = data.get("orders")
                yield [r for r in raw if isinstance(r, dict)] if isinstance(raw, list) else []
                token = str(data.get("next_page_token") or "") or None
                if token is None:
                    return

        def updated_at(row: Row) -> datetime:
            try:
                return parse_time(row.get("update_time"))
            except MappingError as exc:
                raise ValueError(str(exc)) from exc

        return WindowListing(
            since, pages(), order_id=lambda row: str(row.get("id")), updated_at=updated_at
        )

    async def fetch_orders_by_ids(
        self, external_order_ids: Sequence[str], hint: ReadHint | None = None
    ) -> OrdersRead:
        """As the sync reads: Search Orders by update window from `hint.updated_since` (100
        full orders a call), paged until every id is found; Get Order Detail (50 ids a call)
        only for ids the window did not return."""
        ids = list(dict.fromkeys(str(i) for i in external_order_ids))
        if not ids:
            return OrdersRead()
        found: dict[str, Row] = {}
        if hint is not None and hint.updated_since is not None:
            listing = await self._window_listing(hint.updated_since, self._open_listing)
            found = await listing.find(ids, hint.changed_at)
        rest = [i for i in ids if i not in found]
        if rest:
            wanted = set(rest)
            found.update(
                {
                    str(r.get("id")): r
                    for r in await self._details(rest)
                    if str(r.get("id")) in wanted
                }
            )
        orders, failures = self._normalize(list(found.values()))
        return OrdersRead(orders=orders, failures=failures)

    # --- products and stock --------------------------------------------------------------

    async def _product_pages(self, body: Mapping[str, Any]) -> AsyncIterator[list[Row]]:
        token: str | None = None
        while True:
            params = {"page_size": str(self.products_page_size)}
            if token:
                params["page_token"] = token
            payload = await self._call(
                "POST",
                f"/product/{self.version('products_search')}/products/search",
                params=params,
                body=dict(body),
            )
            data = data_of(payload)
            raw = data.get("products")
            rows = [p for p in raw if isinstance(p, dict)] if isinstance(raw, list) else []
            if rows:
                yield rows
            token = str(data.get("next_page_token") or "") or None
            if token is None or not rows:
                return

    def _map_products(self, rows: Sequence[Row]) -> list[NormalizedProduct]:
        page: list[NormalizedProduct] = []
        for product in rows:
            try:
                page.append(map_product(product))
            except _MAPPING_ERRORS as exc:
                self.events(
                    "product_failed",
                    {"externalProductId": str(product.get("id")), "message": str(exc)},
                )
        return page

    async def iter_products(self) -> AsyncIterator[list[NormalizedProduct]]:
        async for rows in self._product_pages({"status": "ALL"}):
            page = self._map_products(rows)
            if page:
                yield page

    async def _skus(self, updates: Sequence[StockUpdate]) -> dict[str, Row]:
        """The SKU objects (with their warehouses) of `updates`, by SKU id, 10 a search."""
        by_id = sorted({u.external_variation_id for u in updates if u.external_variation_id})
        found: dict[str, Row] = {}
        for chunk in _chunks(by_id, self.sku_filter_size):
            async for rows in self._product_pages({"sku_ids": list(chunk)}):
                for product in rows:
                    for sku in product.get("skus") or []:
                        if isinstance(sku, dict) and sku.get("id") is not None:
                            found[str(sku["id"])] = {**sku, "product_id": str(product.get("id"))}
        return found

    async def read_stock(self, updates: Sequence[StockUpdate]) -> dict[ListingKey, int | None]:
        """Only the pushed SKUs: Search Products filtered by `sku_ids`."""
        stock: dict[ListingKey, int | None] = {}
        by_id = sorted({u.external_variation_id for u in updates if u.external_variation_id})
        for chunk in _chunks(by_id, self.sku_filter_size):
            async for rows in self._product_pages({"sku_ids": list(chunk)}):
                stock.update(stock_by_listing(self._map_products(rows)))
        return stock

    async def update_stock(self, updates: Sequence[StockUpdate]) -> list[StockResult]:
        """Update Inventory per product. Each SKU's every warehouse is named (TikTok asks for
        all of them): the whole quantity goes to its first warehouse and the others are set to
        0 (whether 0 is accepted is unconfirmed). Partial failures come back with code 0 and
        `data.errors[]` naming the SKU."""
        results: dict[int, StockResult] = {}
        pending = []
        for index, update in enumerate(updates):
            if not update.external_product_id or not update.external_variation_id:
                results[index] = StockResult(
                    update.sku, False, "Not linked to a TikTok Shop product and SKU"
                )
            else:
                pending.append((index, update))
        try:
            skus = await self._skus([u for _, u in pending]) if pending else {}
        except MarketplaceError as exc:
            for index, update in pending:
                results[index] = StockResult.failed(update.sku, exc, str(exc))
            pending = []
            skus = {}
        by_product: dict[str, list[tuple[int, StockUpdate]]] = {}
        for index, update in pending:
            by_product.setdefault(str(update.external_product_id), []).append((index, update))
        for product_id, batch in by_product.items():
            await self._inventory_update(product_id, batch, skus, results)
        return [results[index] for index in range(len(updates))]

    async def _inventory_update(
        self,
        product_id: str,
        batch: list[tuple[int, StockUpdate]],
        skus: Mapping[str, Row],
        results: dict[int, StockResult],
    ) -> None:
        body_skus = []
        for _, update in batch:
            sku = skus.get(str(update.external_variation_id)) or {}
            warehouses = [
                str(w.get("warehouse_id"))
                for w in sku.get("inventory") or []
                if isinstance(w, Mapping) and w.get("warehouse_id")
            ]
            entry: dict[str, Any] = {"id": str(update.external_variation_id)}
            if warehouses:
                entry["inventory"] = [
                    {"warehouse_id": w, "quantity": int(update.quantity) if i == 0 else 0}
                    for i, w in enumerate(warehouses)
                ]
            else:
                entry["inventory"] = [{"quantity": int(update.quantity)}]
            body_skus.append(entry)
        try:
            payload = await self._call(
                "POST",
                f"/product/{self.version('inventory_update')}/products/{product_id}/inventory/update",
                body={"skus": body_skus},
            )
        except MarketplaceError as exc:
            for index, update in batch:
                results[index] = StockResult.failed(update.sku, exc, str(exc))
            return
        refused: dict[str, str] = {}
        errors = data_of(payload).get("errors")
        for error in errors if isinstance(errors, list) else []:
            if not isinstance(error, Mapping):
                continue
            detail = error.get("detail")
            sku_id = str(detail.get("sku_id")) if isinstance(detail, Mapping) else ""
            refused[sku_id] = str(error.get("message") or f"TikTok error {error.get('code')}")
        for index, update in batch:
            reason = refused.get(str(update.external_variation_id))
            if reason is None and "" in refused:
                reason = refused[""]
            results[index] = StockResult(update.sku, reason is None, reason)


def token_pair(payload: Mapping[str, Any]) -> TokenPair:
    """Token get and refresh answers: `*_expire_in` are absolute Unix times, not durations."""
    data = data_of(payload)
    access = data.get("access_token")
    if not access:
        raise ReauthRequiredError(
            "TikTok Shop's token answer had no access token", platform=PLATFORM
        )

    def at(key: str) -> datetime | None:
        try:
            return datetime.fromtimestamp(int(data[key]), UTC)
        except (KeyError, TypeError, ValueError, OverflowError, OSError):
            return None

    refresh = data.get("refresh_token")
    return TokenPair(
        access_token=str(access),
        refresh_token=str(refresh) if refresh else None,
        access_expires_at=at("access_token_expire_in"),
        refresh_expires_at=at("refresh_token_expire_in"),
    )
