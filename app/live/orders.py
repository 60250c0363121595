"""Live and Messenger orders in `marketplace_orders`: created unpaid, their items rewritten
from the lines that hold stock, a new version (and a message to the buyer) per change."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import delete, insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import MarketplaceOrder, MarketplaceOrderItem
from app.models.social_order import SocialOrder
from app.models.social_order_line import SocialOrderLine
from app.models.social_reply import SocialReply

LIVE = "live"
MESSENGER = "messenger"
SOCIAL_CHANNELS = frozenset({LIVE, MESSENGER})
PLATFORM = "facebook"


def _digest(value: Any) -> bytes:
    return hashlib.blake2b(orjson.dumps(value, default=str), digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class NewOrder:
    connection_id: uuid.UUID
    user_id: str
    channel: str
    external_order_id: str
    buyer_id: str
    buyer_name: str | None
    currency: str
    placed_at: datetime
    session_id: uuid.UUID | None = None
    psid: str | None = None
    first_comment_id: str | None = None
    raw: dict[str, Any] | None = None


async def create_orders(session: AsyncSession, new: Sequence[NewOrder]) -> dict[str, int]:
    """New unpaid orders in two statements; external order id -> order id for those created
    (one whose external id exists already, a redelivery, is left out)."""
    if not new:
        return {}
    rows = await session.execute(
        pg_insert(MarketplaceOrder)
        .values(
            [
                {
                    "connection_id": n.connection_id,
                    "user_id": n.user_id,
                    "platform_code": PLATFORM,
                    "external_order_id": n.external_order_id,
                    "status": "unpaid",
                    "raw_status": "awaiting_payment",
                    "buyer_name": n.buyer_name,
                    "currency": n.currency,
                    "subtotal": Decimal(0),
                    "shipping_fee": Decimal(0),
                    "discount": Decimal(0),
                    "total": Decimal(0),
                    "order_created_at": n.placed_at,
                    "order_updated_at": n.placed_at,
                    "raw": {"channel": n.channel, "buyerId": n.buyer_id, **(n.raw or {})},
                    "content_hash": _digest([]),
                    "channel": n.channel,
                    "buyer_external_id": n.buyer_id,
                }
                for n in new
            ]
        )
        .on_conflict_do_nothing(index_elements=["connection_id", "external_order_id"])
        .returning(MarketplaceOrder.external_order_id, MarketplaceOrder.id)
    )
    created = {row.external_order_id: row.id for row in rows}
    socials = [
        {
            "order_id": created[n.external_order_id],
            "connection_id": n.connection_id,
            "session_id": n.session_id,
            "channel": n.channel,
            "buyer_id": n.buyer_id,
            "psid": n.psid,
            "first_comment_id": n.first_comment_id,
            "is_open": True,
            "version": 0,
        }
        for n in new
        if n.external_order_id in created
    ]
    if socials:
        await session.execute(insert(SocialOrder), socials)
    return created


_LINE_COLUMNS = (
    SocialOrderLine.id,
    SocialOrderLine.order_id,
    SocialOrderLine.sku,
    SocialOrderLine.code,
    SocialOrderLine.name,
    SocialOrderLine.external_product_id,
    SocialOrderLine.unit_price,
    SocialOrderLine.requested,
    SocialOrderLine.reserved,
    SocialOrderLine.active,
)


def _lines_view(lines: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    items = [
        [line.id, line.sku, line.code, line.name, line.reserved, str(line.unit_price)]
        for line in lines
        if line.active and line.reserved > 0
    ]
    waiting = [
        [line.id, line.sku, line.code, line.name, line.requested - line.reserved]
        for line in lines
        if line.active and line.requested > line.reserved
    ]
    return items, waiting


async def refresh_orders(
    session: AsyncSession, order_ids: Collection[int], *, reply: bool = True
) -> list[int]:
    """Rewrite the items and total of these orders from their lines; an order whose content
    changed gets a new version and a reply in the outbox. Returns the orders that changed."""
    if not order_ids:
        return []
    ids = sorted(set(order_ids))
    orders = {
        o.id: o
        for o in await session.scalars(
            select(MarketplaceOrder).where(MarketplaceOrder.id.in_(ids)).with_for_update()
        )
    }
    socials = {
        s.order_id: s
        for s in await session.scalars(select(SocialOrder).where(SocialOrder.order_id.in_(ids)))
    }
    # Plain rows, not objects: the allocation writes `reserved` in SQL (so objects loaded
    # earlier would be stale), and a burst refreshes thousands of lines at once.
    all_lines = await session.execute(
        select(*_LINE_COLUMNS)
        .where(SocialOrderLine.order_id.in_(ids), SocialOrderLine.active)
        .order_by(SocialOrderLine.sort_at, SocialOrderLine.sort_key, SocialOrderLine.id)
    )
    by_order: dict[int, list[Any]] = {i: [] for i in ids}
    for line in all_lines:
        by_order[line.order_id].append(line)
    changed: list[int] = []
    items: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    for order_id in ids:
        order, social = orders[order_id], socials[order_id]
        lines = by_order[order_id]
        shown, waiting = _lines_view(lines)
        if social.is_open and not any(line.active for line in lines):
            # Every comment of the order was deleted or edited away: nothing is left to pay.
            order.status = "cancelled"
            order.raw_status = "all_lines_removed"
            social.is_open = False
        held = [line for line in lines if line.active and line.reserved > 0]
        if order.status == "unpaid":
            # Only waiting: nothing to pay yet, so not an unpaid order (counts, analytics)
            # until a unit is theirs. A closed order keeps what it was.
            order.waiting_only = not held and bool(waiting)
        digest = _digest([order.status, shown, waiting])
        if digest == order.content_hash:
            continue
        order.content_hash = digest
        order.subtotal = order.total = sum(
            (line.unit_price * line.reserved for line in held), Decimal(0)
        )
        order.order_updated_at = now
        items += [
            {
                "order_id": order_id,
                "line_no": number,
                "sku": line.sku,
                "name": line.name,
                "variation": line.code,
                "quantity": line.reserved,
                "unit_price": line.unit_price,
                "discount": Decimal(0),
                "external_item_id": str(line.id),
                "external_product_id": line.external_product_id,
            }
            for number, line in enumerate(held, start=1)
        ]
        social.version += 1
        changed.append(order_id)
    if not changed:
        return changed
    # Items are rewritten for the changed orders in two statements, whatever their number.
    await session.execute(
        delete(MarketplaceOrderItem).where(MarketplaceOrderItem.order_id.in_(changed))
    )
    if items:
        await session.execute(insert(MarketplaceOrderItem), items)
    await session.flush()
    if reply:
        await queue_replies(session, [(orders[i], socials[i]) for i in changed])
    return changed


async def queue_replies(
    session: AsyncSession, changed: Sequence[tuple[MarketplaceOrder, SocialOrder]]
) -> None:
    """The message for each new version: the private reply to the buyer's first comment for
    a live order's first version, an update after. The unique key makes a change messaged
    once whatever is retried."""
    rows = []
    for order, social in changed:
        private = social.channel == LIVE and social.version == 1 and social.first_comment_id
        if private:
            key = f"comment:{order.connection_id}:{social.first_comment_id}"
        else:
            key = f"order:{order.id}:v{social.version}"
        rows.append(
            {
                "connection_id": order.connection_id,
                "order_id": order.id,
                "dedupe_key": key,
                "kind": "private_reply" if private else "update",
                "comment_id": social.first_comment_id if private else None,
                "order_version": social.version,
            }
        )
    if not rows:
        return
    # Parameters apart from the statement: one cached statement whatever the number of rows.
    await session.execute(
        pg_insert(SocialReply).on_conflict_do_nothing(index_elements=["dedupe_key"]), rows
    )
    for connection_id in {order.connection_id for order, _ in changed}:
        replies_due(session, connection_id)


def replies_due(session: AsyncSession, connection_id: uuid.UUID) -> None:
    """Ask for the reply job of this connection once the transaction commits."""
    from app.live.replies import queue_reply_job

    queue_reply_job(session, connection_id)


_OUTCOMES = text(
    "UPDATE live_comments c SET outcome = CASE WHEN x.held THEN 'ordered' ELSE 'waitlisted' END "
    "FROM (SELECT comment_row_id, bool_or(reserved > 0) AS held FROM social_order_lines "
    "WHERE order_id = ANY(CAST(:orders AS bigint[])) AND active "
    "AND comment_row_id IS NOT NULL GROUP BY comment_row_id) AS x "
    "WHERE c.id = x.comment_row_id"
)


async def settle_orders(session: AsyncSession, order_ids: Collection[int]) -> None:
    """After lines moved: the orders' items, totals and replies, and each comment's outcome."""
    ids = sorted(set(order_ids))
    if not ids:
        return
    await refresh_orders(session, ids)
    await session.execute(_OUTCOMES, {"orders": ids})


async def order_lines(session: AsyncSession, order_id: int) -> list[SocialOrderLine]:
    rows = await session.scalars(
        select(SocialOrderLine)
        .where(SocialOrderLine.order_id == order_id)
        .order_by(SocialOrderLine.sort_at, SocialOrderLine.sort_key, SocialOrderLine.id)
        .execution_options(populate_existing=True)
    )
    return list(rows)
