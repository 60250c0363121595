"""Bulk stock changes (JSON and CSV) and bulk SKU mappings: a result per row in order, bad
rows never stop the others, each row goes through the single PUT's service (ledger, pushes),
and the pushes of a bulk are one round per connection."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.inventory.bulk import MAX_ROWS
from tests.conftest import RunningSandbox, auth_headers
from tests.inventory.helpers import SKU, USER, eventually, inventory, ledger
from tests.products.helpers import all_listings, connect, sandbox_stock, sync_products

HEADERS = auth_headers(USER)
LAZADA_STOCK_UPDATE = "/product/stock/sellable/update"


async def bulk_json(api: httpx.AsyncClient, items: list[Any]) -> httpx.Response:
    return await api.post(
        "/api/marketplace/inventory/bulk",
        params={"userId": USER},
        json={"userId": USER, "items": items},
        headers=HEADERS,
    )


async def bulk_csv(api: httpx.AsyncClient, content: bytes) -> httpx.Response:
    return await api.post(
        "/api/marketplace/inventory/bulk",
        params={"userId": USER},
        content=content,
        headers={**HEADERS, "content-type": "text/csv; charset=utf-8"},
    )


async def missing(api: httpx.AsyncClient, sku: str) -> bool:
    response = await api.get(
        f"/api/marketplace/inventory/{sku}", params={"userId": USER}, headers=HEADERS
    )
    return response.status_code == 404


async def nothing_pending(session_factory: async_sessionmaker[AsyncSession]) -> bool:
    async with session_factory() as session:
        pending = await session.scalar(
            text("SELECT count(*) FROM marketplace_stock_levels WHERE push_status = 'pending'")
        )
    return pending == 0


async def push_jobs(session_factory: async_sessionmaker[AsyncSession]) -> int:
    async with session_factory() as session:
        count = await session.scalar(
            text("SELECT count(*) FROM job_outbox WHERE function = 'push_stock'")
        )
    return int(count or 0)


def outcome(result: dict[str, Any]) -> tuple[Any, ...]:
    error = result.get("error") or {}
    return (result.get("sku"), result["status"], error.get("code"), error.get("field"))


async def test_bulk_rows_with_errors_answer_one_result_each_in_order(
    stock_api: httpx.AsyncClient, clean: None
) -> None:
    response = await bulk_json(
        stock_api,
        [
            {"sku": "KEEP-1", "available": 7},
            {"sku": "NEW-1", "available": 3, "buffer": 1, "lowStockAt": 2},
            {"sku": "KEEP-1", "available": 9},  # a duplicate: the first row wins
            {"sku": "NEG-1", "available": -1},
            {"sku": "TEXT-1", "buffer": "x"},
            {"sku": "BOOL-1", "maxQuantity": True},
            {"sku": "FRACTION-1", "zeroBelow": 1.5},
            {"sku": "COLOUR-1", "colour": "red"},
            {"available": 2},
            {"sku": "NULL-1", "available": None},
            5,
            {"sku": "RULE-OFF", "buffer": None},
        ],
    )
    assert response.status_code == 200, response.text
    results = response.json()["data"]
    assert [outcome(r) for r in results] == [
        ("KEEP-1", "ok", None, None),
        ("NEW-1", "ok", None, None),
        ("KEEP-1", "error", "duplicate_sku", "items[2].sku"),
        ("NEG-1", "error", "invalid_value", "items[3].available"),
        ("TEXT-1", "error", "invalid_value", "items[4].buffer"),
        ("BOOL-1", "error", "invalid_value", "items[5].maxQuantity"),
        ("FRACTION-1", "error", "invalid_value", "items[6].zeroBelow"),
        ("COLOUR-1", "error", "unknown_field", "items[7].colour"),
        (None, "error", "missing_field", "items[8].sku"),
        ("NULL-1", "error", "invalid_value", "items[9].available"),
        (None, "error", "invalid_row", "items[10]"),
        ("RULE-OFF", "ok", None, None),
    ]
    assert all("row" not in r for r in results)  # row numbers are for CSV uploads
    assert all("message" in r["error"] for r in results if r["status"] == "error")

    kept = await inventory(stock_api, "KEEP-1")
    assert kept["available"] == 7
    assert [(e["kind"], e["quantity"]) for e in await ledger(stock_api, "KEEP-1")] == [("set", 7)]
    created = await inventory(stock_api, "NEW-1")  # an unknown SKU is created, as PUT does
    assert (created["available"], created["buffer"], created["lowStockAt"]) == (3, 1, 2)
    for sku in ("NEG-1", "TEXT-1", "BOOL-1", "FRACTION-1", "COLOUR-1", "NULL-1"):
        assert await missing(stock_api, sku), sku
    assert (await inventory(stock_api, "RULE-OFF"))["buffer"] is None


async def test_a_csv_upload_with_a_bom_and_thai_skus_names_each_row(
    stock_api: httpx.AsyncClient, clean: None
) -> None:
    content = (
        "\ufeffsku,available,buffer,LowStockAt\r\n"
        "เสื้อยืด-แดง,12,,5\r\n"
        '"กางเกง, ยีนส์ ""พิเศษ""",4,1,\r\n'
        "SKU-Z,abc,,\r\n"
        "\r\n"
        '"หมวก\nสองบรรทัด",null,,\r\n'
        "กระเป๋า,-3,,\r\n"
        "รองเท้า,8,null,null\r\n"
    ).encode()
    response = await bulk_csv(stock_api, content)
    assert response.status_code == 200, response.text
    results = response.json()["data"]
    assert [(r.get("row"), *outcome(r)) for r in results] == [
        (2, "เสื้อยืด-แดง", "ok", None, None),
        (3, 'กางเกง, ยีนส์ "พิเศษ"', "ok", None, None),
        (4, "SKU-Z", "error", "invalid_value", "available"),
        # Spreadsheet rows: the blank line is row 5, a cell over two lines is one row.
        (6, "หมวก\nสองบรรทัด", "error", "invalid_value", "available"),
        (7, "กระเป๋า", "error", "invalid_value", "available"),
        (8, "รองเท้า", "ok", None, None),
    ]
    shirt = await inventory(stock_api, "เสื้อยืด-แดง")
    assert (shirt["available"], shirt["buffer"], shirt["lowStockAt"]) == (12, None, 5)
    jeans = await inventory(stock_api, 'กางเกง, ยีนส์ "พิเศษ"')
    assert (jeans["available"], jeans["buffer"]) == (4, 1)
    assert await missing(stock_api, "SKU-Z")
    shoes = await inventory(stock_api, "รองเท้า")
    assert (shoes["available"], shoes["buffer"], shoes["lowStockAt"]) == (8, None, None)

    # The same without a BOM, and a cell left empty leaves the figure as it is.
    again = await bulk_csv(stock_api, "sku,buffer\nเสื้อยืด-แดง,2\n".encode())
    assert [outcome(r) for r in again.json()["data"]] == [("เสื้อยืด-แดง", "ok", None, None)]
    shirt = await inventory(stock_api, "เสื้อยืด-แดง")
    assert (shirt["available"], shirt["buffer"]) == (12, 2)


async def test_a_malformed_bulk_request_is_a_422_naming_the_field(
    stock_api: httpx.AsyncClient, clean: None
) -> None:
    def fields(response: httpx.Response) -> list[str]:
        assert response.status_code == 422, response.text
        return [f["field"] for f in response.json()["error"]["fields"]]

    too_many = [{"sku": f"S-{n}", "available": 1} for n in range(MAX_ROWS + 1)]
    assert fields(await bulk_json(stock_api, too_many)) == ["items"]
    assert await missing(stock_api, "S-0")  # nothing of it applied
    rows = "".join(f"S-{n},1\n" for n in range(MAX_ROWS + 1))
    assert fields(await bulk_csv(stock_api, f"sku,available\n{rows}".encode())) == ["items"]
    assert fields(await bulk_csv(stock_api, b"sku,available,colour\nA,1,red\n")) == ["colour"]
    assert fields(await bulk_csv(stock_api, b"available\n1\n")) == ["sku"]
    assert fields(await bulk_csv(stock_api, b"sku,available\n\xff\xfe,1\n")) == ["body"]
    assert fields(await bulk_csv(stock_api, b"")) == ["body"]
    response = await stock_api.post(
        "/api/marketplace/inventory/bulk",
        params={"userId": USER},
        content=b'{"userId": "seller-1", "items": [',
        headers={**HEADERS, "content-type": "application/json"},
    )
    assert fields(response) == ["body"]
    response = await stock_api.post(
        "/api/marketplace/inventory/bulk",
        json={"userId": USER, "items": {"sku": "A"}},
        headers=HEADERS,
    )
    assert fields(response) == ["items"]
    response = await stock_api.post(
        "/api/marketplace/inventory/bulk",
        params={"userId": USER},
        content=b"sku,available\nA,1\n",
        headers={**HEADERS, "content-type": "text/plain"},
    )
    assert fields(response) == ["content-type"]
    # Another user's rows: refused as every route refuses them.
    response = await stock_api.post(
        "/api/marketplace/inventory/bulk",
        json={"userId": "seller-2", "items": [{"sku": "A", "available": 1}]},
        headers=HEADERS,
    )
    assert response.status_code == 403


async def test_the_pushes_of_a_bulk_change_are_one_round_per_connection(
    stock_api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    worker: None,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, credentials = await connect(stock_api, sandbox, "lazada", productCount=8)
    await sync_products(stock_api, connection)
    await eventually(lambda: nothing_pending(session_factory))
    skus = sorted({row["sku"] for row in await all_listings(stock_api, USER) if row["sku"]})[:6]
    assert len(skus) == 6
    lazada = sandbox.sandboxes.lazada
    before = lazada.calls[LAZADA_STOCK_UPDATE]
    jobs_before = await push_jobs(session_factory)

    # Listed SKUs first and last, with unlisted rows between: the bulk outlasts the time slot
    # in which single changes share a push job.
    listed = [{"sku": sku, "available": 20 + n} for n, sku in enumerate(skus)]
    between = [{"sku": f"NOT-LISTED-{n}", "available": 1} for n in range(300)]
    response = await bulk_json(
        stock_api, [*listed[:3], *between, *listed[3:], {"sku": skus[0], "available": 99}]
    )
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["data"]] == ["ok"] * 306 + ["error"]
    assert await push_jobs(session_factory) - jobs_before == 1  # one job, its one connection

    await eventually(lambda: nothing_pending(session_factory))
    # Six SKUs changed, one round: one stock update call (Lazada takes 20 SKUs a call).
    assert lazada.calls[LAZADA_STOCK_UPDATE] - before == 1
    for n, sku in enumerate(skus):
        assert sandbox_stock(sandbox, "lazada", credentials["shopId"], sku) == 20 + n
        assert (await inventory(stock_api, sku))["listings"][0]["pushStatus"] == "ok"


async def test_bulk_sku_mappings_answer_a_result_per_listing(
    stock_api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    worker: None,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection, _ = await connect(stock_api, sandbox, "shopee")
    await sync_products(stock_api, connection)
    await eventually(lambda: nothing_pending(session_factory))
    first, second, third = (row["id"] for row in (await all_listings(stock_api, USER))[:3])

    response = await stock_api.put(
        "/api/marketplace/sku-mappings",
        json={
            "userId": USER,
            "items": [
                {"listingId": first, "masterSku": "BUNDLE-9"},
                {"listingId": 987654321, "masterSku": "BUNDLE-9"},
                {"listingId": second, "masterSku": "BUNDLE-9"},
                {"listingId": "abc", "masterSku": "BUNDLE-9"},
                {"listingId": first, "masterSku": "OTHER"},
                {"listingId": third},
                {"listingId": third, "masterSku": None},
            ],
        },
        headers=HEADERS,
    )
    assert response.status_code == 200, response.text
    results = response.json()["data"]
    assert [
        (r.get("listingId"), r["status"], (r.get("error") or {}).get("code")) for r in results
    ] == [
        (first, "ok", None),
        (987654321, "error", "not_found"),
        (second, "ok", None),
        (None, "error", "invalid_value"),
        (first, "error", "duplicate_listing"),
        (third, "error", "missing_field"),
        (third, "ok", None),
    ]
    assert results[3]["error"]["field"] == "items[3].listingId"
    row = await inventory(stock_api, "BUNDLE-9")
    assert sorted(item["listingId"] for item in row["listings"]) == sorted([first, second])
    listings = {row["id"]: row for row in await all_listings(stock_api, USER)}
    assert listings[third]["masterSku"] is None
    await eventually(lambda: nothing_pending(session_factory))

    # The single form is unchanged: it answers the listing.
    response = await stock_api.put(
        "/api/marketplace/sku-mappings",
        json={"userId": USER, "listingId": second, "masterSku": SKU},
        headers=HEADERS,
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["id"] == second
    assert response.json()["data"]["masterSku"] == SKU


async def test_a_row_locked_by_another_transaction_fails_alone(
    stock_api: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession], clean: None
) -> None:
    for sku in ("HELD-1", "FREE-1"):
        assert (await bulk_json(stock_api, [{"sku": sku, "available": 1}])).status_code == 200
    async with session_factory() as holder:
        # Another writer keeps HELD-1 locked past the stock lock timeout (3 s): the bulk's
        # one-savepoint attempt gives up, and then only that row fails.
        await holder.execute(text("SELECT id FROM inventory_skus WHERE sku = 'HELD-1' FOR UPDATE"))
        response = await bulk_json(
            stock_api,
            [
                {"sku": "FREE-1", "available": 5},
                {"sku": "HELD-1", "available": 5},
                {"sku": "FRESH-1", "available": 5},
            ],
        )
        await holder.rollback()
    assert [outcome(r) for r in response.json()["data"]] == [
        ("FREE-1", "ok", None, None),
        ("HELD-1", "error", "busy", "items[1].sku"),
        ("FRESH-1", "ok", None, None),
    ]
    assert [(await inventory(stock_api, s))["available"] for s in ("FREE-1", "HELD-1")] == [5, 1]
    assert (await inventory(stock_api, "FRESH-1"))["available"] == 5
    assert [e["quantity"] for e in await ledger(stock_api, "FREE-1")] == [1, 5]
