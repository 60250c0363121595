"""Analytics figures against the hand-computed ones of tests/analytics/dataset.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.analytics.schemas import SummaryResponse, TimeseriesResponse, TopProductsResponse
from app.platforms.types import NormalizedOrder, OrderItem, OrderStatus
from tests.analytics import dataset
from tests.analytics.dataset import USER, Shops, utc
from tests.conftest import auth_headers
from tests.orders.factories import add_connection, ingest_orders

SessionFactory = async_sessionmaker[AsyncSession]
BASE = "/api/marketplace/analytics"
MARCH = {"from": "2024-03-01", "to": "2024-03-31"}


SCHEMAS: dict[str, type[BaseModel]] = {
    "summary": SummaryResponse,
    "timeseries": TimeseriesResponse,
    "top-products": TopProductsResponse,
}


async def get(api: httpx.AsyncClient, path: str, user: str = USER, **params: Any) -> Any:
    response = await api.get(
        f"{BASE}/{path}", params={"userId": user, **params}, headers=auth_headers(user)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    # Some bodies are built without a pydantic pass: the documented schema must still hold.
    SCHEMAS[path].model_validate(body, strict=False)
    return body["data"]


async def error(api: httpx.AsyncClient, path: str, **params: Any) -> httpx.Response:
    return await api.get(f"{BASE}/{path}", params=params, headers=auth_headers(USER))


@pytest.fixture
async def shops(analytics_api: httpx.AsyncClient, session_factory: SessionFactory) -> Shops:
    return await dataset.build(session_factory)


def platform(body: dict[str, Any], code: str) -> dict[str, Any]:
    [row] = [p for p in body["platforms"] if p["platformCode"] == code]
    return row


async def test_summary_per_platform_and_total_in_bangkok(
    analytics_api: httpx.AsyncClient, shops: Shops
) -> None:
    body = await get(analytics_api, "summary", **MARCH)
    assert (body["from"], body["to"], body["tz"]) == ("2024-03-01", "2024-03-31", "Asia/Bangkok")
    assert [p["platformCode"] for p in body["platforms"]] == ["lazada", "shopee"]
    # S1, S2, S3, S8 count; S4 is unpaid, S5 cancelled, S6 returned, S7 in February.
    assert platform(body, "shopee") == {
        "platformCode": "shopee",
        "orders": 4,
        "cancelledOrders": 1,
        "returnedOrders": 1,
        "failedOrders": 0,
        "revenue": {"THB": "360.50"},
        "averageOrderValue": {"THB": "90.13"},  # 90.125 rounded half up
        "cancellationRate": 0.1667,  # 1 / (4 + 1 + 1)
        "shareOfOrders": 0.6667,
    }
    # L1 (no payment time: its creation day) and L2; L3 was paid in April, L4 failed.
    assert platform(body, "lazada") == {
        "platformCode": "lazada",
        "orders": 2,
        "cancelledOrders": 0,
        "returnedOrders": 0,
        "failedOrders": 1,
        "revenue": {"MYR": "40.00", "THB": "120.00"},
        "averageOrderValue": {"MYR": "40.00", "THB": "120.00"},
        "cancellationRate": 0.0,
        "shareOfOrders": 0.3333,
    }
    assert body["total"] == {
        "orders": 6,
        "cancelledOrders": 1,
        "returnedOrders": 1,
        "failedOrders": 1,
        "revenue": {"MYR": "40.00", "THB": "480.50"},
        "averageOrderValue": {"MYR": "40.00", "THB": "96.10"},  # 480.50 / 5 THB orders
        "cancellationRate": 0.125,
        "shareOfOrders": 1.0,
    }


async def test_an_order_counts_on_its_day_in_the_requested_zone(
    analytics_api: httpx.AsyncClient, shops: Shops
) -> None:
    day = {"from": "2024-03-01", "to": "2024-03-01"}
    # Bangkok: S1 (COD, 23:30) and S8 (paid 08:00); S2 was paid and S3 placed after midnight.
    bangkok = await get(analytics_api, "summary", **day)
    assert platform(bangkok, "shopee")["orders"] == 2
    assert platform(bangkok, "shopee")["revenue"] == {"THB": "110.00"}
    # UTC: all four fall on 1 March.
    in_utc = await get(analytics_api, "summary", tz="UTC", **day)
    assert platform(in_utc, "shopee")["orders"] == 4
    assert platform(in_utc, "shopee")["revenue"] == {"THB": "360.50"}
    next_day = await get(analytics_api, "summary", **{"from": "2024-03-02", "to": "2024-03-02"})
    assert platform(next_day, "shopee")["revenue"] == {"THB": "250.50"}  # S2 + S3
    assert platform(next_day, "shopee")["returnedOrders"] == 1  # S6, paid on 2 March


async def test_nothing_counted_gives_zeros_and_empty_money(
    analytics_api: httpx.AsyncClient, shops: Shops
) -> None:
    body = await get(analytics_api, "summary", **{"from": "2023-01-01", "to": "2023-01-31"})
    for row in [*body["platforms"], body["total"]]:
        assert row["orders"] == row["cancelledOrders"] == row["returnedOrders"] == 0
        assert row["revenue"] == row["averageOrderValue"] == {}
        assert row["cancellationRate"] == row["shareOfOrders"] == 0


async def test_daily_series_has_every_day_with_empty_ones(
    analytics_api: httpx.AsyncClient, shops: Shops
) -> None:
    span = {"from": "2024-03-01", "to": "2024-03-05"}
    orders = await get(analytics_api, "timeseries", interval="day", metric="orders", **span)
    assert (orders["interval"], orders["metric"]) == ("day", "orders")
    days = ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04", "2024-03-05"]
    assert orders["series"] == [
        {
            "platformCode": "lazada",
            "points": [
                {"bucket": d, "value": v} for d, v in zip(days, [0, 0, 0, 0, 1], strict=True)
            ],
        },
        {
            "platformCode": "shopee",
            "points": [
                {"bucket": d, "value": v} for d, v in zip(days, [2, 2, 0, 0, 0], strict=True)
            ],
        },
    ]
    revenue = await get(analytics_api, "timeseries", interval="day", metric="revenue", **span)
    values = {s["platformCode"]: [p["value"] for p in s["points"]] for s in revenue["series"]}
    assert values == {
        "lazada": [{}, {}, {}, {}, {"MYR": "40.00"}],
        "shopee": [{"THB": "110.00"}, {"THB": "250.50"}, {}, {}, {}],
    }


async def test_weekly_buckets_start_on_monday(
    analytics_api: httpx.AsyncClient, shops: Shops
) -> None:
    body = await get(analytics_api, "timeseries", interval="week", **MARCH)
    points = {s["platformCode"]: s["points"] for s in body["series"]}
    # 1 March 2024 is a Friday: its week is named by Monday 26 February.
    weeks = ["2024-02-26", "2024-03-04", "2024-03-11", "2024-03-18", "2024-03-25"]
    assert [p["bucket"] for p in points["shopee"]] == weeks
    assert [p["value"] for p in points["shopee"]] == [4, 0, 0, 0, 0]
    assert [p["value"] for p in points["lazada"]] == [0, 1, 1, 0, 0]  # L1 5 Mar, L2 12 Mar


async def test_monthly_revenue_per_currency(analytics_api: httpx.AsyncClient, shops: Shops) -> None:
    body = await get(
        analytics_api,
        "timeseries",
        interval="month",
        metric="revenue",
        **{"from": "2024-02-15", "to": "2024-04-30"},
    )
    values = {
        s["platformCode"]: {p["bucket"]: p["value"] for p in s["points"]} for s in body["series"]
    }
    assert values == {
        "lazada": {
            "2024-02-01": {},
            "2024-03-01": {"MYR": "40.00", "THB": "120.00"},
            "2024-04-01": {"MYR": "15.55"},  # L3, paid 2 April
        },
        "shopee": {
            "2024-02-01": {"THB": "1000.00"},  # S7; S8 was placed in February, paid in March
            "2024-03-01": {"THB": "360.50"},
            "2024-04-01": {},
        },
    }


async def test_top_products_by_master_sku_with_linked_and_unlinked_listings(
    analytics_api: httpx.AsyncClient, shops: Shops
) -> None:
    body = await get(analytics_api, "top-products", **MARCH)
    products = {p["sku"]: p for p in body["products"]}
    assert body["products"][0]["sku"] == "SKU-A"
    # Shopee's SKU-A lines and Lazada's LZ-A (linked to master SKU-A) are one product.
    assert products["SKU-A"] == {
        "sku": "SKU-A",
        "name": "Phone case blue",  # the most recent line's name (L1)
        "units": 7,
        "revenue": {"MYR": "40.00", "THB": "110.00"},
        "platforms": [
            {"platformCode": "lazada", "units": 4, "revenue": {"MYR": "40.00"}},
            {"platformCode": "shopee", "units": 3, "revenue": {"THB": "110.00"}},
        ],
    }
    # Price x quantity less the line discount; SKU-B has no listing, LZ-C is unlinked.
    assert products["SKU-B"]["revenue"] == {"THB": "200.00"}
    assert products["LZ-C"]["units"] == 1  # L4 failed; a Shopee link of LZ-C does not apply
    assert products["LZ-C"]["platforms"] == [
        {"platformCode": "lazada", "units": 1, "revenue": {"THB": "120.00"}}
    ]
    assert products[None]["name"] == "Gift wrap"
    assert set(products) == {"SKU-A", "SKU-B", "LZ-C", None}
    limited = await get(analytics_api, "top-products", limit=1, **MARCH)
    assert [p["sku"] for p in limited["products"]] == ["SKU-A"]


async def test_figures_include_an_order_stored_a_moment_ago(
    analytics_api: httpx.AsyncClient, session_factory: SessionFactory
) -> None:
    connection = await add_connection(session_factory, USER, "shopee")
    now = datetime.now(UTC)
    before = await get(analytics_api, "summary", tz="UTC")
    assert before["total"]["orders"] == 0
    order = NormalizedOrder(
        external_order_id="FRESH-1",
        status=OrderStatus.PENDING,
        raw_status="READY_TO_SHIP",
        currency="THB",
        created_at=now - timedelta(seconds=1),
        updated_at=now,
        subtotal=Decimal("99"),
        shipping_fee=Decimal("0"),
        discount=Decimal("0"),
        total=Decimal("99"),
        items=[OrderItem(sku="SKU-F", name="Fresh", quantity=1, unit_price=Decimal("99"))],
        is_cod=True,
    )
    await ingest_orders(session_factory, connection, [order])
    after = await get(analytics_api, "summary", tz="UTC")
    assert after["total"]["orders"] == 1
    assert after["total"]["revenue"] == {"THB": "99.00"}


async def test_data_as_of_per_connection(
    analytics_api: httpx.AsyncClient, session_factory: SessionFactory, shops: Shops
) -> None:
    synced, later_failed, pushed = utc(3, 10, 9), utc(3, 10, 10), utc(3, 10, 9, 30)
    async with session_factory() as session, session.begin():
        for status, kind, finished in (
            ("success", "orders", synced),
            ("failed", "orders", later_failed),
            ("success", "products", later_failed),
        ):
            await session.execute(
                text(
                    "INSERT INTO marketplace_sync_logs (id, connection_id, user_id, kind, status, "
                    "started_at, finished_at) VALUES (gen_random_uuid(), :c, :u, :k, :s, "
                    "CAST(:f AS timestamptz) - interval '1 minute', :f)"
                ),
                {"c": shops.shopee, "u": USER, "k": kind, "s": status, "f": finished},
            )
        await session.execute(
            text(
                "INSERT INTO marketplace_webhooks (platform_code, user_id, connection_id, "
                "event_type, dedupe_key, payload, status, processed_at) VALUES ('lazada', :u, "
                ":c, 'order', 'e-1', '{}'::jsonb, 'processed', :p)"
            ),
            {"c": shops.lazada, "u": USER, "p": pushed},
        )
    body = await get(analytics_api, "summary", **MARCH)
    freshness = {row["connectionId"]: row for row in body["dataAsOf"]}
    shopee, lazada = freshness[str(shops.shopee)], freshness[str(shops.lazada)]
    assert datetime.fromisoformat(shopee["asOf"]) == synced  # not the failed or products sync
    assert shopee["lastProcessedEventAt"] is None
    assert datetime.fromisoformat(lazada["asOf"]) == pushed
    assert lazada["lastSuccessfulSyncAt"] is None
    assert (shopee["platformCode"], lazada["platformCode"]) == ("shopee", "lazada")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"tz": "Mars/Olympus"}, "tz"),
        ({"tz": "UTC+7"}, "tz"),
        # Files of the system's zoneinfo folder that are not IANA zone names.
        ({"tz": "localtime"}, "tz"),
        ({"tz": "posixrules"}, "tz"),
        ({"tz": "Factory"}, "tz"),
        ({"from": "2024-03-02", "to": "2024-03-01"}, "from"),
        ({"from": "2021-01-01", "to": "2023-12-31"}, "to"),
        ({"from": "2024-02-30"}, "from"),
        # The driver sends date.max as infinity: such dates must never reach the database.
        ({"from": "9999-12-01", "to": "9999-12-31"}, "from"),
        ({"from": "0001-01-01", "to": "0001-01-09"}, "from"),
        ({"from": "2999-12-01", "to": "3000-01-05"}, "to"),
    ],
)
async def test_bad_parameters_are_422_naming_the_parameter(
    analytics_api: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    for path in ("summary", "timeseries", "top-products"):
        response = await error(analytics_api, path, **params)
        assert response.status_code == 422, response.text
        fields = [f["field"] for f in response.json()["error"]["fields"]]
        assert any(field in name for name in fields), fields


async def test_another_users_figures_are_forbidden(analytics_api: httpx.AsyncClient) -> None:
    response = await analytics_api.get(
        f"{BASE}/summary", params={"userId": "someone-else"}, headers=auth_headers(USER)
    )
    assert response.status_code == 403
    assert (await analytics_api.get(f"{BASE}/summary")).status_code == 401
