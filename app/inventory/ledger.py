"""Appending to the stock ledger (never updated, never deleted)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import StockLedgerEntry


@dataclass(slots=True)
class Entry:
    master_sku_id: int
    kind: str
    quantity: int
    available_after: int
    oversold: bool = False
    order_id: int | None = None
    connection_id: uuid.UUID | None = None
    listing_id: int | None = None
    platform_code: str | None = None
    message: str | None = None


async def append(session: AsyncSession, entries: list[Entry]) -> None:
    if not entries:
        return
    await session.execute(
        insert(StockLedgerEntry),
        [
            {
                "master_sku_id": e.master_sku_id,
                "kind": e.kind,
                "quantity": max(0, e.quantity),
                "available_after": e.available_after,
                "oversold": e.oversold,
                "order_id": e.order_id,
                "connection_id": e.connection_id,
                "listing_id": e.listing_id,
                "platform_code": e.platform_code,
                "message": e.message,
            }
            for e in entries
        ],
    )
