"""The read-back of a stock push reads only the pushed items, and sees what the catalogue sees."""

from __future__ import annotations

import pytest

from app.config import Settings
from app.platforms.base import stock_by_listing
from app.platforms.registry import build_client
from app.platforms.types import Credentials, PlatformCode, StockUpdate
from tests.conftest import RunningSandbox, create_sandbox_shop


@pytest.mark.parametrize("platform", ["shopee", "lazada", "facebook", "tiktok"])
async def test_reading_back_some_listings_gives_the_catalogues_figures_for_them(
    sandbox: RunningSandbox, settings: Settings, platform: str
) -> None:
    shop = await create_sandbox_shop(sandbox, platform, productCount=60)
    credentials = Credentials(
        shop_id=shop["shopId"],
        api_key=shop["apiKey"],
        api_secret=shop["apiSecret"],
        access_token=shop["accessToken"],
        refresh_token=shop.get("refreshToken"),
    )
    async with build_client(PlatformCode(platform), credentials, settings) as client:
        catalogue: dict[tuple[str, str], int | None] = {}
        updates: list[StockUpdate] = []
        seen = 0
        async for page in client.iter_products():
            catalogue.update(stock_by_listing(page))
            for product in page:
                for variation in product.variations:
                    seen += 1
                    if variation.sku and seen % 7 == 0:
                        updates.append(
                            StockUpdate(
                                sku=variation.sku,
                                quantity=0,
                                external_product_id=product.external_product_id,
                                external_variation_id=variation.external_variation_id,
                            )
                        )
        read = await client.read_stock(updates)

    wanted = {(u.external_product_id or "", u.external_variation_id or "") for u in updates}
    assert len(wanted) >= 5
    assert {key: read.get(key, -1) for key in wanted} == {key: catalogue[key] for key in wanted}
    # Whole products may come back (a SKU's siblings), never the rest of the catalogue.
    assert set(read) <= set(catalogue) and len(read) < len(catalogue) / 2
