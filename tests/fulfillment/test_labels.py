"""Airway bills as PDF: one order, many in one file, not ready yet."""

from __future__ import annotations

import io

import httpx
import pytest
from pypdf import PdfReader

from tests.conftest import RunningSandbox
from tests.fulfillment.conftest import HEADERS, USER, open_shop, settled, ship


async def ship_all(api: httpx.AsyncClient, order_ids: list[int]) -> None:
    ids = set()
    for order_id in order_ids:
        response = await ship(api, order_id, f"label-{order_id}", method="dropoff")
        ids.add(response.json()["data"]["id"])
    done = await settled(api, ids)
    assert {f["status"] for f in done.values()} == {"shipped"}


@pytest.mark.parametrize("platform", ["shopee", "lazada", "tiktok"])
async def test_label_is_a_pdf_and_many_labels_are_one_pdf_in_the_order_given(
    api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None, platform: str
) -> None:
    shop = await open_shop(api, sandbox, platform, 3)
    ids = [o["id"] for o in shop.orders]
    await ship_all(api, ids)
    one = await api.get(
        f"/api/marketplace/orders/{ids[0]}/label",
        params={"userId": USER, "format": "a4"},
        headers=HEADERS,
    )
    assert one.status_code == 200, one.text
    assert one.headers["content-type"] == "application/pdf"
    assert one.content.startswith(b"%PDF")
    wanted = [ids[2], ids[0], ids[1]]
    many = await api.post(
        "/api/marketplace/labels", json={"userId": USER, "orderIds": wanted}, headers=HEADERS
    )
    assert many.status_code == 200, many.text
    pages = PdfReader(io.BytesIO(many.content)).pages
    assert len(pages) == 3
    externals = {o["id"]: o["externalOrderId"] for o in shop.orders}
    for page, order_id in zip(pages, wanted, strict=True):
        assert f"Order {externals[order_id]}" in page.extract_text()


async def test_a_label_before_shipping_is_409_label_not_ready_with_retry_after(
    api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None
) -> None:
    shop = await open_shop(api, sandbox, "shopee", 1)
    response = await api.get(
        f"/api/marketplace/orders/{shop.orders[0]['id']}/label",
        params={"userId": USER},
        headers=HEADERS,
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "label_not_ready"
    assert int(response.headers["Retry-After"]) >= 1


async def test_a_label_still_processing_is_409_then_ready(
    api: httpx.AsyncClient, sandbox: RunningSandbox, worker: None
) -> None:
    from tests.fulfillment.conftest import control

    shop = await open_shop(api, sandbox, "shopee", 1)
    polls = {"shopId": shop.credentials["shopId"], "labelProcessingPolls": 1}
    await control(sandbox, "shopee", "fulfillment", polls)
    await ship_all(api, [shop.orders[0]["id"]])
    url = f"/api/marketplace/orders/{shop.orders[0]['id']}/label"
    first = await api.get(url, params={"userId": USER}, headers=HEADERS)
    assert first.status_code == 409 and "Retry-After" in first.headers
    second = await api.get(url, params={"userId": USER}, headers=HEADERS)
    assert second.status_code == 200 and second.content.startswith(b"%PDF")
