"""Shopee's tracking push (code 4) reads the tracking number at once, not at the next interval."""

from __future__ import annotations

import json
import time

from tests.conftest import RunningSandbox, make_settings, running_app, running_worker
from tests.fulfillment.conftest import control, open_shop, settled, ship
from tests.webhooks.conftest import PUBLIC_BASE_URL, PUSH_URL, signed


async def test_a_tracking_push_reads_the_number_before_the_next_interval(
    database_url: str, redis_url: str, sandbox: RunningSandbox, clean: None
) -> None:
    # The next periodic read is an hour away: only the push can bring the number in time.
    settings = make_settings(
        database_url,
        redis_url,
        sandbox,
        PUBLIC_BASE_URL=PUBLIC_BASE_URL,
        FULFILLMENT_TRACKING_RETRY_SECONDS=3600,
    )
    async with running_app(settings) as api, running_worker(settings):
        shop = await open_shop(api, sandbox, "shopee", 1)
        hidden = {"shopId": shop.credentials["shopId"], "trackingHiddenReads": 1}
        await control(sandbox, "shopee", "fulfillment", hidden)
        reads = "/api/v2/logistics/get_tracking_number"
        before = sandbox.sandboxes.shopee.calls[reads]
        response = await ship(api, shop.orders[0]["id"], "k", method="dropoff")
        fid = response.json()["data"]["id"]
        done = (await settled(api, {fid}))[fid]
        assert done["status"] == "shipped" and done["trackingNumber"] is None
        while sandbox.sandboxes.shopee.calls[reads] == before:  # the first read: empty
            await settled(api, {fid})
        sn = shop.orders[0]["externalOrderId"]
        push = {
            "shop_id": int(shop.credentials["shopId"]),
            "code": 4,
            "timestamp": int(time.time()),
            "data": {"ordersn": sn, "tracking_no": "TH-PUSHED"},
        }
        body = json.dumps(push).encode()
        headers = {**signed("shopee", shop.credentials, body), "Content-Type": "application/json"}
        answer = await api.post(PUSH_URL, content=body, headers=headers)
        assert answer.status_code < 300, answer.text
        done = (await settled(api, {fid}, tracking=True))[fid]
        assert done["trackingNumber"].startswith("TH")
        assert sandbox.sandboxes.shopee.calls[reads] - before == 2
