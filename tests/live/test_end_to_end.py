"""A live on the sandbox Page: buyers comment, each comment reaches the service as a signed
`feed` webhook, a real worker processes it, and the orders, stock and replies are right."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.inventory import tasks as inventory_tasks
from app.live import tasks as live_tasks
from app.worker import FUNCTIONS
from tests.conftest import RunningSandbox, running_worker
from tests.inventory.helpers import eventually
from tests.live.helpers import (
    HEADERS,
    USER,
    comments,
    facebook_shop,
    open_live,
    order,
    set_stock,
    stock,
)

SKU = "LIVE-E2E"
PUSH_URL = "http://omni.test/api/webhooks/marketplace/facebook"


@pytest.fixture
def sandbox_to_api(sandbox: RunningSandbox, api: httpx.AsyncClient) -> Iterator[None]:
    app = api.app  # type: ignore[attr-defined]
    sandbox.sandboxes.facebook.webhook_client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app)
    )
    yield
    sandbox.sandboxes.facebook.webhook_client = None


@pytest.fixture
async def worker(settings: Settings, clean: None) -> AsyncIterator[None]:
    functions = [*FUNCTIONS, *live_tasks.FUNCTIONS, *inventory_tasks.FUNCTIONS]
    async with running_worker(settings, functions=functions, cron_jobs=[], poll_delay=0.01):
        yield


async def test_a_sandbox_live_becomes_orders_stock_and_replies(
    api: httpx.AsyncClient, sandbox: RunningSandbox, sandbox_to_api: None, worker: None
) -> None:
    connection, _ = await facebook_shop(api, sandbox)
    await set_stock(api, SKU, 2)
    page_id = connection["shopId"]
    async with httpx.AsyncClient(base_url=sandbox.root) as control:
        video = await control.post("/facebook/_sandbox/live/videos", json={"shopId": page_id})
        post_id = video.json()["postId"]
        recent = int(time.time()) - 60
        live = await open_live(
            api, connection, [{"code": "A1", "sku": SKU, "price": "99"}], post_id=post_id
        )
        sent = await control.post(
            "/facebook/_sandbox/live/comments",
            json={
                "shopId": page_id,
                "postId": post_id,
                "url": PUSH_URL,
                "comments": [
                    # Recent: a push older than WEBHOOK_MAX_AGE_HOURS is refused.
                    {"message": "CF A1", "buyerId": f"e2e-{n}", "createdTime": recent + n}
                    for n in range(4)
                ]
                + [{"message": "ส่งฟรีไหมคะ", "buyerId": "e2e-9"}],
            },
        )
        assert all(c["status"] == 200 for c in sent.json()["comments"]), sent.text

        async def captured() -> list[dict[str, Any]] | None:
            rows = await comments(api, live)
            done = len(rows) == 5 and all(r["outcome"] for r in rows)
            return rows if done else None

        rows = await eventually(captured)
        outcomes = {r["buyerId"]: r["outcome"] for r in rows}
        assert outcomes == {
            "e2e-0": "ordered",
            "e2e-1": "ordered",
            "e2e-2": "waitlisted",
            "e2e-3": "waitlisted",
            "e2e-9": "not_an_order",
        }
        first = next(r for r in rows if r["buyerId"] == "e2e-0")
        body = await order(api, first["orderId"])
        assert (body["channel"], body["status"], body["total"]) == ("live", "unpaid", "99.00")
        listed = await api.get(
            "/api/marketplace/orders",
            params={"userId": USER, "platformCode": "facebook"},
            headers=HEADERS,
        )
        assert len(listed.json()["data"]) == 4
        figures = await stock(api, SKU)
        assert (figures["available"], figures["reserved"], figures["oversold"]) == (0, 2, 0)

        async def replied() -> dict[str, Any] | None:
            inbox = (
                await control.get("/facebook/_sandbox/live/inbox", params={"shopId": page_id})
            ).json()
            buyers = inbox["buyers"]
            return buyers if len(buyers) == 4 else None

        buyers = await eventually(replied)
        # One private reply each, first (a buyer whose line moved later also gets an update).
        for messages in buyers.values():
            vias = [m["via"] for m in messages]
            assert vias[0] == "private_reply" and vias.count("private_reply") == 1

        # The seller cancels the first order: the first buyer waiting gets the unit.
        cancelled = await api.post(
            f"/api/marketplace/orders/{first['orderId']}/cancel",
            json={"userId": USER},
            headers=HEADERS,
        )
        assert cancelled.status_code == 200
        outcomes = {r["buyerId"]: r["outcome"] for r in await comments(api, live)}
        assert outcomes["e2e-2"] == "ordered" and outcomes["e2e-3"] == "waitlisted"

        cart = await control.post(
            "/facebook/_sandbox/live/carts",
            json={
                "shopId": page_id,
                "psid": "e2e-cart",
                "url": PUSH_URL,
                "products": [{"retailerId": SKU, "quantity": 1, "unitPrice": 99}],
            },
        )
        assert cart.status_code == 200

        async def cart_order() -> dict[str, Any] | None:
            response = await api.get(
                "/api/marketplace/orders", params={"userId": USER, "q": ""}, headers=HEADERS
            )
            ids = [o["id"] for o in response.json()["data"]]
            for order_id in ids:
                found = await order(api, order_id)
                if found["channel"] == "messenger":
                    return found
            return None

        messenger = await eventually(cart_order)
        assert messenger["items"] == [] and messenger["waitlist"][0]["quantity"] == 1

        async def cart_reply() -> list[dict[str, Any]] | None:
            inbox = (
                await control.get(
                    "/facebook/_sandbox/live/inbox",
                    params={"shopId": page_id, "buyerId": "e2e-cart"},
                )
            ).json()["buyers"]
            return inbox.get("e2e-cart")

        [confirmation] = await eventually(cart_reply)
        assert confirmation["messagingType"] == "RESPONSE"
