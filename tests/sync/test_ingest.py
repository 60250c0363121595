"""The one write path for orders, on the real database."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.crypto import CredentialCipher
from app.models import MarketplaceConnection, MarketplaceOrder, MarketplaceOrderItem
from app.orders.ingest import upsert_orders
from app.platforms.types import NormalizedOrder, OrderItem, OrderStatus
from tests.conftest import ENCRYPTION_KEY

T0 = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)


def an_order(status: OrderStatus, updated: datetime, *, qty: int = 1) -> NormalizedOrder:
    return NormalizedOrder(
        external_order_id="2410010001",
        status=status,
        raw_status=status.value.upper(),
        currency="THB",
        created_at=T0,
        updated_at=updated,
        subtotal=Decimal("199.50") * qty,
        shipping_fee=Decimal("38"),
        discount=Decimal("0.01"),
        total=Decimal("199.50") * qty + Decimal("37.99"),
        items=[OrderItem(sku="SKU-1", name="เสื้อยืด", quantity=qty, unit_price=Decimal("199.50"))],
    )


async def a_connection(session: AsyncSession) -> MarketplaceConnection:
    cipher = CredentialCipher([ENCRYPTION_KEY])
    connection = MarketplaceConnection(
        id=uuid.uuid4(),
        user_id="u1",
        platform_code="shopee",
        shop_id="1",
        api_key_encrypted=cipher.encrypt("1"),
        api_secret_encrypted=cipher.encrypt("s"),
        access_token_encrypted=cipher.encrypt("t"),
    )
    session.add(connection)
    await session.flush()
    return connection


async def test_older_payload_never_overwrites_newer(
    clean: None, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with session_factory() as session:
        connection = await a_connection(session)
        kwargs = {"connection_id": connection.id, "user_id": "u1", "platform_code": "shopee"}
        newer = an_order(OrderStatus.SHIPPED, T0 + timedelta(hours=5), qty=2)
        older = an_order(OrderStatus.PENDING, T0 + timedelta(hours=1))
        created = await upsert_orders(session, [newer], **kwargs)
        stale = await upsert_orders(session, [older], **kwargs)
        same = await upsert_orders(session, [newer], **kwargs)
        await session.commit()
        row = await session.scalar(select(MarketplaceOrder))
        items = (await session.scalars(select(MarketplaceOrderItem))).all()
    assert (created.created, stale.unchanged, same.unchanged) == (1, 1, 1)
    assert row is not None and row.status == "shipped"
    assert row.total == Decimal("436.99")
    assert [(i.sku, i.quantity) for i in items] == [("SKU-1", 2)]


async def test_newer_version_replaces_items_and_counts_as_updated(
    clean: None, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with session_factory() as session:
        connection = await a_connection(session)
        kwargs = {"connection_id": connection.id, "user_id": "u1", "platform_code": "shopee"}
        first = an_order(OrderStatus.PENDING, T0)
        await upsert_orders(session, [first], **kwargs)
        later = replace(an_order(OrderStatus.CANCELLED, T0 + timedelta(hours=2), qty=3))
        result = await upsert_orders(session, [later, first], **kwargs)  # dup in one batch
        await session.commit()
        items = (await session.scalars(select(MarketplaceOrderItem))).all()
        row = await session.scalar(select(MarketplaceOrder))
    assert (result.created, result.updated, result.unchanged) == (0, 1, 0)
    assert row is not None and row.status == "cancelled"
    assert [i.quantity for i in items] == [3]
