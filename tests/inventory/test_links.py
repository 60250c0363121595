"""Linking a listing by hand moves the master SKU's figure through the ledger."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.inventory.recompute import recompute_counters
from tests.conftest import RunningSandbox, auth_headers
from tests.inventory.helpers import USER, inventory, ledger, replay, set_stock, settled
from tests.products.helpers import all_listings, connect, sync_products

MASTER = "BUNDLE-1"


async def _link(api: httpx.AsyncClient, listing_id: int, master: str | None) -> None:
    response = await api.put(
        "/api/marketplace/sku-mappings",
        json={"userId": USER, "listingId": listing_id, "masterSku": master},
        headers=auth_headers(USER),
    )
    assert response.status_code == 200, response.text


async def _agrees(
    api: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession], sku: str
) -> dict[str, Any]:
    row = await inventory(api, sku)
    entries = await ledger(api, sku)
    moves = [e for e in entries if e["kind"] in ("set", "reserve", "release")]
    assert moves, "a link that sets the figure is in the ledger"
    assert moves[-1]["availableAfter"] == row["available"]
    assert replay(entries) == row["available"] - row["oversold"]
    assert await recompute_counters(session_factory) == []
    return row


async def test_linking_a_listing_writes_a_ledger_entry_that_agrees_with_the_counters(
    stock_api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    worker: None,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, _ = await connect(stock_api, sandbox, "shopee")
    await sync_products(stock_api, connection)
    listings = [row for row in await all_listings(stock_api, USER) if row["platformStock"]]
    low, high = sorted(listings[:2], key=lambda row: row["platformStock"])
    assert low["platformStock"] < high["platformStock"]

    # The first listing of a new master SKU gives its figure; the one with less stock lowers it.
    await _link(stock_api, high["id"], MASTER)
    row = await _agrees(stock_api, session_factory, MASTER)
    assert row["available"] == high["platformStock"]
    await _link(stock_api, low["id"], MASTER)
    row = await _agrees(stock_api, session_factory, MASTER)
    assert row["available"] == low["platformStock"]

    # Linked to a master SKU the seller set: the seller's figure stays, and the ledger says so.
    await set_stock(stock_api, "SET-BY-HAND", available=3)
    await _link(stock_api, high["id"], "SET-BY-HAND")
    row = await _agrees(stock_api, session_factory, "SET-BY-HAND")
    assert row["available"] == 3
    # The master SKU it left keeps agreeing too.
    await _agrees(stock_api, session_factory, MASTER)
    # The listing now shows the 3 pushed for SET-BY-HAND: our own figure, not the shop's.
    await settled(stock_api, "SET-BY-HAND")
    # Linked back to a master SKU that holds stock already: a listing moved between master
    # SKUs brings no stock of its own, so the figure stays (whenever the read-back landed).
    await _link(stock_api, high["id"], MASTER)
    row = await _agrees(stock_api, session_factory, MASTER)
    assert row["available"] == low["platformStock"]
    # Every link is in the ledger, naming its listing, also one that leaves the figure as it is.
    links = [e["listingId"] for e in await ledger(stock_api, MASTER) if e["kind"] == "set"]
    assert links == [high["id"], low["id"], high["id"]]
    links = [e["listingId"] for e in await ledger(stock_api, "SET-BY-HAND") if e["kind"] == "set"]
    assert links == [None, high["id"]]
