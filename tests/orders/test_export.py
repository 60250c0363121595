"""Streamed exports: CSV (BOM, header, one row per order, Thai text, money with the currency's
minor units, times in tz, the list's filters, formula injection guarded) and XLSX (a workbook
that opens, typed cells, no formulas); the same for customers and inventory."""

from __future__ import annotations

import csv
import html
import io
import re
import zipfile
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.customers.service import refresh_behind
from app.models import InventorySku
from tests.conftest import auth_headers
from tests.orders.factories import BASE_TIME, Order, add_connection, add_orders

USER = "seller-export"
EXPORT = "/api/marketplace/orders/export"
SessionFactory = async_sessionmaker[AsyncSession]
THAI_NAME = "สมชาย ใจดี"


async def download(api: httpx.AsyncClient, path: str, **params: Any) -> httpx.Response:
    response = await api.get(path, params={"userId": USER, **params}, headers=auth_headers(USER))
    assert response.status_code == 200, response.text
    return response


def read_csv(response: httpx.Response) -> list[dict[str, str]]:
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.content.startswith(b"\xef\xbb\xbf")
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


async def seed(session_factory: SessionFactory) -> None:
    shopee = await add_connection(session_factory, USER, "shopee")
    lazada = await add_connection(session_factory, USER, "lazada")
    await add_orders(
        session_factory,
        shopee,
        [
            Order("SP-1", buyer_name=THAI_NAME, total=Decimal("1250.5")),
            Order(
                "SP-2",
                created_at=BASE_TIME + timedelta(hours=13),  # 01:00 next day in Bangkok
                buyer_name='=HYPERLINK("http://evil.example","x")',
                buyer_email="@attacker",
                status="cancelled",
                total=Decimal("10"),
            ),
        ],
    )
    await add_orders(
        session_factory,
        lazada,
        [
            Order(
                "LZ-1",
                created_at=BASE_TIME + timedelta(days=1),
                currency="VND",
                total=Decimal("38000"),
                discount=Decimal("-5"),
                buyer_name="+Somchai",
                buyer_email="somchai@example.com",
            )
        ],
    )


async def test_csv_has_bom_header_and_one_row_per_order(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    await seed(session_factory)
    response = await download(orders_api, EXPORT, format="csv", tz="Asia/Bangkok")
    assert "attachment" in response.headers["content-disposition"]
    rows = read_csv(response)
    header = response.content.decode("utf-8-sig").splitlines()[0].split(",")
    for column in ("orderId", "platformCode", "externalOrderId", "status", "createdAt"):
        assert column in header
    for column in ("buyerName", "total", "currency"):
        assert column in header
    assert [r["externalOrderId"] for r in rows] == ["LZ-1", "SP-2", "SP-1"]  # newest first
    by_id = {r["externalOrderId"]: r for r in rows}
    # Thai text round-trips; money has the currency's minor units.
    assert by_id["SP-1"]["buyerName"] == THAI_NAME
    assert by_id["SP-1"]["total"] == "1250.50" and by_id["SP-1"]["currency"] == "THB"
    assert by_id["LZ-1"]["total"] == "38000" and by_id["LZ-1"]["currency"] == "VND"
    # A negative amount is a number, not a formula: left as it is.
    assert by_id["LZ-1"]["discount"] == "-5"
    # Times in tz.
    assert by_id["SP-1"]["createdAt"] == "2024-03-01T19:00:00+07:00"
    assert by_id["SP-2"]["createdAt"] == "2024-03-02T08:00:00+07:00"
    assert by_id["SP-1"]["platformCode"] == "shopee" and by_id["LZ-1"]["status"] == "pending"
    # Masked as the list masks them, unless includeBuyer=true.
    assert by_id["SP-1"]["buyerPhone"] == "******5678"
    assert by_id["LZ-1"]["buyerEmail"] == "s****@example.com"
    full = {
        r["externalOrderId"]: r
        for r in read_csv(await download(orders_api, EXPORT, includeBuyer="true"))
    }
    assert full["SP-1"]["buyerPhone"] == "+66812345678"
    assert full["LZ-1"]["buyerEmail"] == "somchai@example.com"
    assert full["SP-1"]["createdAt"] == "2024-03-01T12:00:00+00:00"  # tz defaults to UTC


async def test_csv_guards_formula_injection(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    await seed(session_factory)
    rows = {
        r["externalOrderId"]: r
        for r in read_csv(await download(orders_api, EXPORT, includeBuyer="true"))
    }
    assert rows["SP-2"]["buyerName"] == '\'=HYPERLINK("http://evil.example","x")'
    assert rows["SP-2"]["buyerEmail"] == "'@attacker"
    assert rows["LZ-1"]["buyerName"] == "'+Somchai"
    assert rows["SP-1"]["buyerName"] == THAI_NAME  # ordinary text untouched


async def test_the_lists_filters_apply(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    await seed(session_factory)

    async def ids(**params: Any) -> list[str]:
        return [
            r["externalOrderId"] for r in read_csv(await download(orders_api, EXPORT, **params))
        ]

    assert await ids(status="cancelled") == ["SP-2"]
    assert await ids(platformCode="lazada") == ["LZ-1"]
    assert await ids(q="SP-") == ["SP-2", "SP-1"]
    # A date in tz: 2 March in Bangkok holds SP-2 (08:00 there) and LZ-1 (19:00 there).
    assert await ids(createdFrom="2024-03-02", createdTo="2024-03-02", tz="Asia/Bangkok") == [
        "LZ-1",
        "SP-2",
    ]
    # The same day in UTC ends before SP-2 (01:00 UTC on 2 March).
    assert await ids(createdTo="2024-03-01", tz="UTC") == ["SP-1"]


async def test_bad_parameters_are_422_before_any_byte(orders_api: httpx.AsyncClient) -> None:
    for params, field in (
        ({"tz": "Mars/Olympus"}, "tz"),
        ({"status": "lost"}, "status"),
        ({"format": "pdf"}, "format"),
        ({"createdFrom": "yesterday"}, "createdFrom"),
    ):
        response = await orders_api.get(
            EXPORT, params={"userId": USER, **params}, headers=auth_headers(USER)
        )
        assert response.status_code == 422, (params, response.text)
        assert field in response.text


async def test_export_spans_many_batches(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory, monkeypatch: Any
) -> None:
    from app.exports import sources

    monkeypatch.setattr(sources, "BATCH", 3)
    connection = await add_connection(session_factory, USER, "shopee")
    await add_orders(
        session_factory,
        connection,
        [Order(f"SP-{n:02d}", created_at=BASE_TIME + timedelta(minutes=n)) for n in range(10)],
    )
    rows = read_csv(await download(orders_api, EXPORT))
    assert [r["externalOrderId"] for r in rows] == [f"SP-{n:02d}" for n in range(9, -1, -1)]


def xlsx_cells(content: bytes) -> tuple[str, list[str]]:
    """The first sheet's XML and every text of the workbook (shared or inline strings)."""
    with zipfile.ZipFile(io.BytesIO(content)) as book:
        assert book.testzip() is None
        names = book.namelist()
        assert "xl/workbook.xml" in names
        sheet = book.read("xl/worksheets/sheet1.xml").decode()
        shared = (
            book.read("xl/sharedStrings.xml").decode() if "xl/sharedStrings.xml" in names else ""
        )
    texts = re.findall(r"<t[^>]*>([^<]*)</t>", shared + sheet)
    return sheet, texts


async def test_xlsx_opens_with_typed_cells(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    await seed(session_factory)
    response = await download(orders_api, EXPORT, format="xlsx", tz="Asia/Bangkok")
    assert response.headers["content-type"] == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    sheet, texts = xlsx_cells(response.content)
    for value in ("orderId", "externalOrderId", "buyerName", THAI_NAME, "SP-1", "LZ-1"):
        assert value in texts, value
    assert "2024-03-01T19:00:00+07:00" in texts
    # Text is text: the injected formula is stored as a string, never as a formula.
    assert "<f>" not in sheet
    assert '=HYPERLINK("http://evil.example","x")' in [html.unescape(t) for t in texts]
    assert len(re.findall(r"<row ", sheet)) == 4  # header and three orders
    # Money is a number cell with the currency's decimals; the export's own numbers too.
    assert re.search(r'<c r="O\d+" s="2"><v>1250.50</v></c>', sheet)
    assert re.search(r'<c r="O\d+" s="1"><v>38000</v></c>', sheet)


async def test_customers_and_inventory_export(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    await seed(session_factory)
    await refresh_behind(session_factory)
    customers = read_csv(await download(orders_api, "/api/marketplace/customers/export"))
    # The three orders share the buyer's phone: one customer, guarded and masked.
    assert customers == [
        {
            "customerId": customers[0]["customerId"],
            "name": "'+Somchai",
            "phone": "******5678",
            "email": "s****@example.com",
            "channels": "lazada shopee",
            "orderCount": "3",
            "totalSpent": "THB 1250.50; VND 38000",  # the cancelled order left out
            "firstOrderAt": "2024-03-01T12:00:00+00:00",
            "lastOrderAt": "2024-03-02T12:00:00+00:00",
        }
    ]

    async with session_factory() as session, session.begin():
        await session.execute(
            insert(InventorySku),
            [
                {"user_id": USER, "sku": "=CMD", "available": 7, "buffer": 2},
                {"user_id": USER, "sku": "TEE-1", "available": 3},
                {"user_id": "someone-else", "sku": "NOT-MINE", "available": 1},
            ],
        )
    inventory = read_csv(await download(orders_api, "/api/marketplace/inventory/export"))
    assert [(r["sku"], r["available"], r["sellable"]) for r in inventory] == [
        ("'=CMD", "7", "5"),
        ("TEE-1", "3", "3"),
    ]
    book = await download(orders_api, "/api/marketplace/inventory/export", format="xlsx")
    _, texts = xlsx_cells(book.content)
    assert "TEE-1" in texts and "NOT-MINE" not in texts


async def test_xlsx_continues_on_a_new_sheet_past_the_row_limit(
    orders_api: httpx.AsyncClient, session_factory: SessionFactory, monkeypatch: Any
) -> None:
    from app.exports import writers

    monkeypatch.setattr(writers, "XLSX_MAX_ROWS", 3)  # the header and two rows per sheet
    connection = await add_connection(session_factory, USER, "shopee")
    await add_orders(
        session_factory,
        connection,
        [Order(f"SP-{n}", created_at=BASE_TIME + timedelta(minutes=n)) for n in range(5)],
    )
    response = await download(orders_api, EXPORT, format="xlsx")
    with zipfile.ZipFile(io.BytesIO(response.content)) as book:
        workbook = book.read("xl/workbook.xml").decode()
        types = book.read("[Content_Types].xml").decode()
        sheets = [book.read(f"xl/worksheets/sheet{i}.xml").decode() for i in (1, 2, 3)]
    assert re.findall(r'<sheet name="([^"]+)"', workbook) == ["Orders", "Orders 2", "Orders 3"]
    assert types.count("worksheet+xml") == 3
    ids = [re.findall(r"<t>(SP-\d)</t>", sheet) for sheet in sheets]
    assert ids == [["SP-4", "SP-3"], ["SP-2", "SP-1"], ["SP-0"]]
    assert all("<t>orderId</t>" in sheet for sheet in sheets)  # each sheet has the header


async def test_an_empty_export_is_the_header_alone(orders_api: httpx.AsyncClient) -> None:
    csv_body = await download(orders_api, EXPORT)
    assert read_csv(csv_body) == []
    assert csv_body.content.decode("utf-8-sig").startswith("orderId,platformCode,")
    sheet, texts = xlsx_cells((await download(orders_api, EXPORT, format="xlsx")).content)
    assert "orderId" in texts and len(re.findall(r"<row ", sheet)) == 1
