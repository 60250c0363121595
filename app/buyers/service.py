"""Buyer data under Thailand's PDPA: erasure (retention and on disconnect) and the export of
everything stored about one buyer.

Erasing clears the order's buyer name, phone, e-mail and shipping address and each platform's
copies of them in the raw payload (its mapper knows those fields); the order, its items and
amounts stay. Erasing is idempotent: only orders still holding buyer data are touched."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic_core import from_json, to_json
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.buyers import repository
from app.orders.service import invalid, render_order
from app.platforms.facebook import mapping as facebook_mapping
from app.platforms.lazada import mapping as lazada_mapping
from app.platforms.shopee import mapping as shopee_mapping
from app.platforms.tiktok import mapping as tiktok_mapping
from app.platforms.types import PlatformCode

logger = logging.getLogger("app.buyers")

ERASE_BATCH = 500
# Fewer digits than a Thai landline (0 + 8) cannot single out one buyer; more than E.164's 15
# is not a phone number.
MIN_PHONE_DIGITS, MAX_PHONE_DIGITS = 8, 15

RawEraser = Callable[[dict[str, Any]], dict[str, Any]]
RAW_ERASERS: dict[str, RawEraser] = {
    PlatformCode.SHOPEE.value: shopee_mapping.erase_buyer_data,
    PlatformCode.LAZADA.value: lazada_mapping.erase_buyer_data,
    PlatformCode.FACEBOOK.value: facebook_mapping.erase_buyer_data,
    PlatformCode.TIKTOK.value: tiktok_mapping.erase_buyer_data,
}


def erased_raw(platform_code: str, raw_text: str) -> str:
    raw = orjson.loads(raw_text)
    if not isinstance(raw, dict):
        return raw_text
    eraser = RAW_ERASERS.get(platform_code)
    # A platform without an eraser keeps nothing: dropping its payload is the safe side.
    return orjson.dumps(eraser(raw) if eraser is not None else {}).decode()


async def _erase_rows(session: AsyncSession, rows: Sequence[Any]) -> int:
    if rows:
        await repository.erase(
            session,
            [row.id for row in rows],
            [erased_raw(row.platform_code, row.raw) for row in rows],
        )
    return len(rows)


async def erase_connection_buyer_data(
    session: AsyncSession, connection_id: uuid.UUID, *, batch_size: int = ERASE_BATCH
) -> int:
    """Erase the buyer data of every order of the connection, in the caller's transaction
    (a disconnect commits it with the rest). Batches bound the memory, not the transaction."""
    erased = 0
    while True:
        rows = await repository.connection_batch(session, connection_id, batch_size)
        erased += await _erase_rows(session, rows)
        if len(rows) < batch_size:
            await session.flush()
            return erased


async def erase_orders_buyer_data(
    session: AsyncSession, order_ids: Sequence[int], *, batch_size: int = ERASE_BATCH
) -> int:
    """Erase the buyer data of these orders (one customer's, say), in the caller's
    transaction; orders erased already are left alone. Returns how many were erased."""
    erased = 0
    for start in range(0, len(order_ids), batch_size):
        rows = await repository.orders_batch(session, order_ids[start : start + batch_size])
        erased += await _erase_rows(session, rows)
    await session.flush()
    return erased


def retention_cutoff(retention_days: int | None, now: datetime) -> datetime | None:
    """Orders placed before this lose their buyer data; None keeps them forever."""
    return None if retention_days is None else now - timedelta(days=retention_days)


async def erase_expired_buyer_data(
    sessionmaker: async_sessionmaker[AsyncSession],
    retention_days: int | None,
    *,
    now: datetime | None = None,
    batch_size: int = ERASE_BATCH,
) -> int:
    """Erase the buyer data of orders placed more than `retention_days` ago. Each batch
    commits on its own, so a large first run makes progress that a crash keeps."""
    cutoff = retention_cutoff(retention_days, now or datetime.now(UTC))
    if cutoff is None:
        return 0
    erased = 0
    while True:
        async with sessionmaker() as session, session.begin():
            rows = await repository.expired_batch(session, cutoff, batch_size)
            erased += await _erase_rows(session, rows)
        if len(rows) < batch_size:
            break
    if erased:
        logger.info(
            "buyer data erased by retention",
            extra={"orders": erased, "retention_days": retention_days},
        )
    return erased


def phone_digits(phone: str) -> str:
    """The digits of a phone parameter, or a 422 when there are too few or too many."""
    digits = "".join(c for c in phone if c.isascii() and c.isdigit())
    if not MIN_PHONE_DIGITS <= len(digits) <= MAX_PHONE_DIGITS:
        raise invalid(
            "phone",
            f"phone must have {MIN_PHONE_DIGITS} to {MAX_PHONE_DIGITS} digits "
            "(e.g. 0812345678 or +66812345678)",
        )
    return digits


async def export_buyer(
    session: AsyncSession, user_id: str, phone: str, *, now: datetime | None = None
) -> bytes:
    """The response body (BuyerExportResponse) as JSON: every order of the user placed by the
    buyer with this phone, in full, with items and raw payloads. None found is an empty list:
    the answer to a data-subject request can be "nothing is stored"."""
    rows = await repository.orders_of_buyer(session, user_id, phone_digits(phone))
    return to_json({"data": {"phone": phone, **export_document(rows, now=now)}})


def export_document(rows: Sequence[Any], *, now: datetime | None = None) -> dict[str, Any]:
    """What an export holds about a buyer's orders (rows with items and `raw`): the orders in
    full, buyer fields unmasked, with the platforms' raw payloads."""
    return {
        "exportedAt": now or datetime.now(UTC),
        "orderCount": len(rows),
        "orders": [{**render_order(row), "raw": from_json(row["raw"])} for row in rows],
    }
