"""Rows for order tests, written straight to the tables (no marketplace, no sync)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.crypto import CredentialCipher
from app.models import MarketplaceConnection, MarketplaceOrder, MarketplaceOrderItem
from app.orders.ingest import upsert_orders
from app.platforms.types import NormalizedOrder
from tests.conftest import ENCRYPTION_KEY

BASE_TIME = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
_cipher = CredentialCipher([ENCRYPTION_KEY])


@dataclass
class Item:
    name: str = "T-shirt"
    sku: str | None = "SKU-1"
    quantity: int = 1
    unit_price: Decimal = Decimal("100.00")
    discount: Decimal = Decimal("0")
    variation: str | None = None
    external_item_id: str | None = "item-1"
    external_product_id: str | None = "product-1"


@dataclass
class Order:
    external_order_id: str
    created_at: datetime = BASE_TIME
    updated_at: datetime | None = None
    status: str = "pending"
    raw_status: str | None = None
    total: Decimal = Decimal("100.00")
    subtotal: Decimal | None = None
    shipping_fee: Decimal = Decimal("0")
    discount: Decimal = Decimal("0")
    currency: str = "THB"
    buyer_name: str | None = "Somchai Srisuk"
    buyer_phone: str | None = "+66812345678"
    buyer_email: str | None = None
    shipping_address: dict[str, Any] | None = None
    payment_method: str | None = "COD"
    is_cod: bool = True
    paid_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    items: list[Item] = field(default_factory=lambda: [Item()])


async def add_connection(
    session_factory: async_sessionmaker[AsyncSession],
    user_id: str,
    platform_code: str = "shopee",
    *,
    shop_id: str | None = None,
) -> uuid.UUID:
    connection_id = uuid.uuid4()
    placeholder = _cipher.encrypt("test-placeholder")
    async with session_factory() as session, session.begin():
        await session.execute(
            insert(MarketplaceConnection).values(
                id=connection_id,
                user_id=user_id,
                platform_code=platform_code,
                shop_id=shop_id or str(connection_id.int % 10**9),
                shop_name=f"{platform_code} shop of {user_id}",
                api_key_encrypted=placeholder,
                api_secret_encrypted=placeholder,
                access_token_encrypted=placeholder,
            )
        )
    return connection_id


async def add_orders(
    session_factory: async_sessionmaker[AsyncSession],
    connection_id: uuid.UUID,
    orders: list[Order],
) -> list[int]:
    """Inserts the orders with their items; returns the new order ids in the same order."""
    async with session_factory() as session, session.begin():
        connection = await session.get(MarketplaceConnection, connection_id)
        assert connection is not None
        ids = []
        for order in orders:
            ids.append(await _insert_order(session, connection, order))
    return ids


async def ingest_orders(
    session_factory: async_sessionmaker[AsyncSession],
    connection_id: uuid.UUID,
    orders: list[NormalizedOrder],
) -> None:
    """Stores mapper output the way a sync does (the one ingest code path)."""
    async with session_factory() as session, session.begin():
        connection = await session.get(MarketplaceConnection, connection_id)
        assert connection is not None
        await upsert_orders(
            session,
            orders,
            connection_id=connection.id,
            user_id=connection.user_id,
            platform_code=connection.platform_code,
        )


async def _insert_order(
    session: AsyncSession, connection: MarketplaceConnection, order: Order
) -> int:
    subtotal = order.subtotal
    if subtotal is None:
        subtotal = sum((i.unit_price * i.quantity for i in order.items), Decimal("0"))
    order_id: int = (
        await session.execute(
            insert(MarketplaceOrder)
            .values(
                connection_id=connection.id,
                user_id=connection.user_id,
                platform_code=connection.platform_code,
                external_order_id=order.external_order_id,
                status=order.status,
                raw_status=order.raw_status or order.status.upper(),
                buyer_name=order.buyer_name,
                buyer_phone=order.buyer_phone,
                buyer_email=order.buyer_email,
                shipping_address=order.shipping_address,
                currency=order.currency,
                subtotal=subtotal,
                shipping_fee=order.shipping_fee,
                discount=order.discount,
                total=order.total,
                payment_method=order.payment_method,
                is_cod=order.is_cod,
                order_created_at=order.created_at,
                order_updated_at=order.updated_at or order.created_at + timedelta(hours=1),
                paid_at=order.paid_at,
                raw=order.raw or {"order_sn": order.external_order_id},
                content_hash=hashlib.blake2b(
                    order.external_order_id.encode(), digest_size=16
                ).digest(),
            )
            .returning(MarketplaceOrder.id)
        )
    ).scalar_one()
    if order.items:
        await session.execute(
            insert(MarketplaceOrderItem),
            [
                {
                    "order_id": order_id,
                    "line_no": line_no,
                    "sku": item.sku,
                    "name": item.name,
                    "variation": item.variation,
                    "quantity": item.quantity,
                    "unit_price": item.unit_price,
                    "discount": item.discount,
                    "external_item_id": item.external_item_id,
                    "external_product_id": item.external_product_id,
                }
                for line_no, item in enumerate(order.items, start=1)
            ],
        )
    return order_id


def series(
    prefix: str, count: int, *, start: datetime = BASE_TIME, step: timedelta = timedelta(hours=1)
) -> list[Order]:
    """`count` orders created one `step` apart, oldest first."""
    return [
        Order(f"{prefix}{n:04d}", created_at=start + step * n, total=Decimal(100 + n))
        for n in range(count)
    ]
