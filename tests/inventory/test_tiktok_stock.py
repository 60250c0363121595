"""The stock mover treats TikTok Shop as one more channel: a master SKU's figure is pushed to
the TikTok SKU's warehouse and read back; a TikTok sale lowers what Shopee shows."""

from __future__ import annotations

import httpx

from app.platforms.tiktok import client as tiktok_client
from tests.conftest import RunningSandbox
from tests.inventory.helpers import SKU, eventually, set_stock, settled, sync_orders
from tests.products.helpers import connect, sandbox_shop, sandbox_stock, sync_products


async def test_stock_is_pushed_to_tiktok_and_a_tiktok_sale_moves_shopee(
    stock_api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None
) -> None:
    tiktok_client._CIPHERS.clear()
    sandbox.sandboxes.tiktok.faults.reset()
    shops = {}
    for platform in ("shopee", "tiktok"):
        connection, credentials = await connect(stock_api, sandbox, platform)
        synced = await sync_products(stock_api, connection)
        assert synced["status"] == "success", synced
        shops[platform] = (connection, credentials)
    tiktok_id = shops["tiktok"][1]["shopId"]
    await set_stock(stock_api, available=10)
    row = await settled(stock_api)
    tiktok_rows = [i for i in row["listings"] if i["platformCode"] == "tiktok"]
    assert tiktok_rows and {i["pushStatus"] for i in tiktok_rows} == {"ok"}
    assert sandbox_stock(sandbox, "tiktok", tiktok_id, SKU) == 10
    calls = sandbox.sandboxes.tiktok.calls
    assert any(path.endswith("/inventory/update") for path in calls)

    sandbox_shop(sandbox, "tiktok", tiktok_id).place_order(SKU, 3)
    await sync_orders(stock_api, shops["tiktok"][0])
    shopee_id = shops["shopee"][1]["shopId"]
    await eventually(lambda: sandbox_stock(sandbox, "shopee", shopee_id, SKU) == 7)
    row = await settled(stock_api)
    assert (row["available"], row["reserved"]) == (7, 3)
