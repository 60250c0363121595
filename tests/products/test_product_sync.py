"""Product sync against each sandbox, the listings API, and automatic and manual links."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import RunningSandbox, auth_headers
from tests.inventory.helpers import settled
from tests.products.helpers import all_listings, connect, sandbox_shop, sync_products

PLATFORMS = ("shopee", "lazada", "facebook", "tiktok")


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_product_sync_stores_every_listing_with_its_stock(
    stock_api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None, platform: str
) -> None:
    connection, credentials = await connect(stock_api, sandbox, platform)
    summary = await sync_products(stock_api, connection)
    assert summary["kind"] == "products" and summary["status"] == "success"

    listings = await all_listings(stock_api, "seller-1", connectionId=connection["id"])
    shop = sandbox_shop(sandbox, platform, credentials["shopId"])
    expected = {v.sku: v for p in shop.products for v in p.variations}
    stored = {row["sku"]: row for row in listings}
    assert set(stored) <= set(expected) and len(stored) >= len(expected) * 0.6
    for sku, row in stored.items():
        assert row["platformStock"] == expected[sku].stock
        assert row["masterSku"] == sku  # linked automatically by seller SKU
        assert row["platformCode"] == platform
        assert row["price"].count(".") == 1 and len(row["price"].split(".")[1]) == 2
    assert summary["productsFetched"] == len(listings)
    assert summary["productsCreated"] == len(listings)


async def test_resync_counts_changes_not_duplicates(
    stock_api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None
) -> None:
    connection, credentials = await connect(stock_api, sandbox, "lazada")
    first = await sync_products(stock_api, connection)
    shop = sandbox_shop(sandbox, "lazada", credentials["shopId"])
    changed = shop.products[0].variations[0]
    await settled(stock_api, changed.sku)  # the first figure's push is done
    changed.stock += 3

    second = await sync_products(stock_api, connection)

    assert second["productsFetched"] == first["productsFetched"]
    assert (second["productsCreated"], second["productsUpdated"]) == (0, 1)
    listings = await all_listings(stock_api, "seller-1")
    assert len(listings) == first["productsFetched"]


async def test_first_sync_sets_available_to_the_lowest_listing_stock(
    stock_api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None
) -> None:
    stocks = {}
    for platform in ("shopee", "lazada"):
        connection, credentials = await connect(stock_api, sandbox, platform)
        await sync_products(stock_api, connection)
        found = sandbox_shop(sandbox, platform, credentials["shopId"]).variation_by_sku(
            "SKU-0001-1"
        )
        stocks[platform] = found[1].stock if found else None

    response = await stock_api.get(
        "/api/marketplace/inventory/SKU-0001-1",
        params={"userId": "seller-1"},
        headers=auth_headers("seller-1"),
    )

    assert response.status_code == 200, response.text
    row = response.json()["data"]
    assert row["available"] == min(s for s in stocks.values() if s is not None)
    assert {listing["platformCode"] for listing in row["listings"]} == {"shopee", "lazada"}


async def test_manual_link_moves_a_listing_and_unlink_survives_resync(
    stock_api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None
) -> None:
    connection, _ = await connect(stock_api, sandbox, "shopee")
    await sync_products(stock_api, connection)
    listing = next(
        row for row in await all_listings(stock_api, "seller-1") if row["sku"] == "SKU-0002-1"
    )
    headers = auth_headers("seller-1")

    linked = await stock_api.put(
        "/api/marketplace/sku-mappings",
        json={"userId": "seller-1", "listingId": listing["id"], "masterSku": "TEE-WHITE-M"},
        headers=headers,
    )
    assert linked.status_code == 200, linked.text
    assert linked.json()["data"]["masterSku"] == "TEE-WHITE-M"
    master = (
        await stock_api.get(
            "/api/marketplace/inventory/TEE-WHITE-M", params={"userId": "seller-1"}, headers=headers
        )
    ).json()["data"]
    assert [row["listingId"] for row in master["listings"]] == [listing["id"]]
    assert master["available"] == listing["platformStock"]

    unlinked = await stock_api.put(
        "/api/marketplace/sku-mappings",
        json={"userId": "seller-1", "listingId": listing["id"], "masterSku": None},
        headers=headers,
    )
    assert unlinked.json()["data"]["masterSku"] is None
    await sync_products(stock_api, connection)
    again = next(
        row for row in await all_listings(stock_api, "seller-1") if row["id"] == listing["id"]
    )
    assert again["masterSku"] is None


async def test_listing_of_another_user_cannot_be_linked(
    stock_api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None
) -> None:
    connection, _ = await connect(stock_api, sandbox, "lazada")
    await sync_products(stock_api, connection)
    listing = (await all_listings(stock_api, "seller-1"))[0]

    response = await stock_api.put(
        "/api/marketplace/sku-mappings",
        json={"userId": "seller-2", "listingId": listing["id"], "masterSku": "X"},
        headers=auth_headers("seller-2"),
    )

    assert response.status_code == 404


async def test_products_are_filtered_and_paged(
    stock_api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None
) -> None:
    connection, _ = await connect(stock_api, sandbox, "facebook")
    await sync_products(stock_api, connection)
    everything = await all_listings(stock_api, "seller-1")
    by_query = await all_listings(stock_api, "seller-1", q="sku-0003")
    paged_ids = [row["id"] for row in everything]

    assert paged_ids == sorted(set(paged_ids))
    assert by_query and all(row["sku"].startswith("SKU-0003") for row in by_query)
    assert await all_listings(stock_api, "seller-1", platformCode="shopee") == []
