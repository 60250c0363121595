"""A small known data set for analytics, with the figures worked out by hand in the tests.

Bangkok is UTC+7 all year. Times below are UTC; the comment gives the Bangkok time and the day
each order counts on there (COD: placed; prepaid: paid; no payment time: placed).

shopee (THB)
  S1  COD, pending        placed 1 Mar 16:30 (23:30 BKK 1 Mar)            100.00  -> BKK 1 Mar
  S2  card, shipped       placed 1 Mar 16:30, paid 17:10 (00:10 BKK 2 Mar) 200.00  -> BKK 2 Mar
  S3  COD, completed      placed 1 Mar 17:30 (00:30 BKK 2 Mar)              50.50  -> BKK 2 Mar
  S4  card, unpaid        placed 3 Mar                                     999.00  never counts
  S5  COD, cancelled      placed 4 Mar 03:00                               300.00  cancelled 4 Mar
  S6  card, returned      placed 2 Mar 03:00, paid 04:00                    80.00  returned 2 Mar
  S7  COD, completed      placed 28 Feb 10:00                             1000.00  -> 28 Feb
  S8  card, completed     placed 29 Feb 10:00, paid 1 Mar 01:00 (08:00)     10.00  -> 1 Mar
lazada
  L1  prepaid, pending, no payment time, placed 5 Mar 10:00          MYR   40.00  -> 5 Mar
  L2  COD, delivered      placed 12 Mar 01:00                        THB  120.00  -> 12 Mar
  L3  card, completed     placed 31 Mar 20:00, paid 2 Apr 02:00      MYR   15.55  -> 2 Apr
  L4  COD, failed         placed 6 Mar 05:00                         THB   70.00  failed 6 Mar

Lines: S1 SKU-A x2 @50; S2 SKU-B x1 @210 less 10; S3 no SKU "Gift wrap" x1 @50.50; S8 SKU-A
x1 @10; L1 LZ-A x4 @10 (the Lazada listing LZ-A is linked to master SKU-A); L2 LZ-C x1 @120
(its listing deliberately unlinked; a Shopee listing LZ-C is linked elsewhere); SKU-B has no
listing at all; S5 SKU-A x5 and S6 SKU-B x3 (not counted).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.orders.factories import Item, Order, add_connection, add_orders

USER = "seller-analytics"


def utc(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2024, month, day, hour, minute, tzinfo=UTC)


def _cod(ref: str, placed: datetime, total: str, status: str, items: list[Item]) -> Order:
    return Order(
        ref, created_at=placed, status=status, total=Decimal(total), is_cod=True, items=items
    )


def _card(
    ref: str,
    placed: datetime,
    paid: datetime | None,
    total: str,
    status: str,
    items: list[Item],
    currency: str = "THB",
) -> Order:
    return Order(
        ref,
        created_at=placed,
        paid_at=paid,
        status=status,
        total=Decimal(total),
        is_cod=False,
        payment_method="card",
        currency=currency,
        items=items,
    )


def item(
    sku: str | None, quantity: int, price: str, discount: str = "0", name: str = "Phone case"
) -> Item:
    return Item(
        name=name, sku=sku, quantity=quantity, unit_price=Decimal(price), discount=Decimal(discount)
    )


SHOPEE_ORDERS = [
    _cod("S1", utc(3, 1, 16, 30), "100.00", "pending", [item("SKU-A", 2, "50.00")]),
    _card(
        "S2",
        utc(3, 1, 16, 30),
        utc(3, 1, 17, 10),
        "200.00",
        "shipped",
        [item("SKU-B", 1, "210.00", "10.00", name="Rice cooker")],
    ),
    _cod("S3", utc(3, 1, 17, 30), "50.50", "completed", [item(None, 1, "50.50", name="Gift wrap")]),
    _card("S4", utc(3, 3, 5), None, "999.00", "unpaid", [item("SKU-A", 9, "111.00")]),
    _cod("S5", utc(3, 4, 3), "300.00", "cancelled", [item("SKU-A", 5, "60.00")]),
    _card(
        "S6",
        utc(3, 2, 3),
        utc(3, 2, 4),
        "80.00",
        "returned",
        [item("SKU-B", 3, "26.67", "0.01", name="Rice cooker")],
    ),
    _cod("S7", utc(2, 28, 10), "1000.00", "completed", [item("SKU-Z", 1, "1000.00")]),
    _card("S8", utc(2, 29, 10), utc(3, 1, 1), "10.00", "completed", [item("SKU-A", 1, "10.00")]),
]
LAZADA_ORDERS = [
    _card(
        "L1",
        utc(3, 5, 10),
        None,
        "40.00",
        "pending",
        [item("LZ-A", 4, "10.00", name="Phone case blue")],
        currency="MYR",
    ),
    _cod("L2", utc(3, 12, 1), "120.00", "delivered", [item("LZ-C", 1, "120.00", name="Mug")]),
    _card(
        "L3",
        utc(3, 31, 20),
        utc(4, 2, 2),
        "15.55",
        "completed",
        [item("LZ-A", 1, "15.55")],
        currency="MYR",
    ),
    _cod("L4", utc(3, 6, 5), "70.00", "failed", [item("LZ-C", 1, "70.00", name="Mug")]),
]


@dataclass
class Shops:
    shopee: uuid.UUID
    lazada: uuid.UUID


async def add_listing(
    session: AsyncSession,
    connection_id: uuid.UUID,
    platform_code: str,
    channel_sku: str,
    master_sku: str | None,
) -> None:
    """A listing with its sku_mappings row: linked to `master_sku`, or deliberately unlinked."""
    product_id = await session.scalar(
        text(
            "INSERT INTO marketplace_products (connection_id, user_id, platform_code, "
            "external_product_id, name, status, raw) VALUES (:c, :u, :p, :e, 'x', 'active', "
            "'{}'::jsonb) RETURNING id"
        ),
        {"c": connection_id, "u": USER, "p": platform_code, "e": f"product-{channel_sku}"},
    )
    listing_id = await session.scalar(
        text(
            "INSERT INTO marketplace_stock_levels (connection_id, user_id, platform_code, "
            "product_id, external_product_id, sku) VALUES (:c, :u, :p, :pid, :e, :sku) "
            "RETURNING id"
        ),
        {
            "c": connection_id,
            "u": USER,
            "p": platform_code,
            "pid": product_id,
            "e": f"product-{channel_sku}",
            "sku": channel_sku,
        },
    )
    master_id = None
    if master_sku is not None:
        master_id = await session.scalar(
            text(
                "INSERT INTO inventory_skus (user_id, sku) VALUES (:u, :s) "
                "ON CONFLICT (user_id, sku) DO UPDATE SET sku = EXCLUDED.sku RETURNING id"
            ),
            {"u": USER, "s": master_sku},
        )
    await session.execute(
        text(
            "INSERT INTO sku_mappings (user_id, listing_id, master_sku_id, source) "
            "VALUES (:u, :l, :m, 'manual')"
        ),
        {"u": USER, "l": listing_id, "m": master_id},
    )


async def build(session_factory: async_sessionmaker[AsyncSession]) -> Shops:
    shops = Shops(
        shopee=await add_connection(session_factory, USER, "shopee"),
        lazada=await add_connection(session_factory, USER, "lazada"),
    )
    await add_orders(session_factory, shops.shopee, SHOPEE_ORDERS)
    await add_orders(session_factory, shops.lazada, LAZADA_ORDERS)
    async with session_factory() as session, session.begin():
        await add_listing(session, shops.lazada, "lazada", "LZ-A", "SKU-A")
        await add_listing(session, shops.lazada, "lazada", "LZ-C", None)
        # The same channel SKU on another shop: a link is per listing, so it must not apply to
        # the Lazada lines of LZ-C.
        await add_listing(session, shops.shopee, "shopee", "LZ-C", "OTHER-SHOP-MASTER")
    return shops
