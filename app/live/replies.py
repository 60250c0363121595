"""Messages to buyers from the reply outbox (social_replies), at most once each.

A row is claimed (`sending`) and committed before the Send API call, so a crash after Meta
took a message never sends it again; what a row sends is the order as it is when sent, so a
burst of changes to one order becomes one message and the older rows are `superseded`. A
refusal is recorded on the row and on the order and never retried; transient failures get a
few tries on later runs of the job."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.connections.credentials import decrypt_credentials
from app.connections.hosts import host_problem
from app.jobs.outbox import enqueue
from app.live.templates import fill
from app.models import MarketplaceConnection, MarketplaceOrder, OrderFulfillment
from app.models.live_session import LiveSession
from app.models.messenger_thread import MessengerThread
from app.models.social_order import SocialOrder
from app.models.social_order_line import SocialOrderLine
from app.models.social_reply import SocialReply
from app.money import format_amount
from app.platforms.errors import MarketplaceError
from app.platforms.facebook.messenger import POST_PURCHASE_UPDATE, MessengerClient
from app.worker_context import WorkerContext

logger = logging.getLogger("app.live.replies")

REPLY_JOB = "send_social_replies"
BATCH = 50
MAX_ATTEMPTS = 3
WINDOW = timedelta(hours=24)
# Order changes within this long of the first share one reply run.
REPLY_COALESCE_SECONDS = 0.5

DEFAULT_TEMPLATE = (
    "สวัสดีค่ะ คุณ{buyerName} 🙏\n"
    "ออเดอร์ {orderNumber}\n"
    "{lines}\n"
    "{waitlist}"
    "ยอดรวม {total} {currency}\n"
    "ชำระเงินโดยโอนเข้าบัญชีที่แจ้งในไลฟ์ แล้วส่งสลิปในแชทนี้ได้เลยค่ะ ขอบคุณค่ะ"
)
CANCELLED_TEXT = "ออเดอร์ {orderNumber} ถูกยกเลิกแล้วค่ะ หากต้องการสั่งใหม่ พิมพ์ CF ตามด้วยรหัสสินค้าได้เลยค่ะ"
# To a buyer whose every line waits: their place in line, nothing to pay yet.
WAITING_TEXT = (
    "สวัสดีค่ะ คุณ{buyerName} 🙏\n"
    "ออเดอร์ {orderNumber}: สินค้าหมดชั่วคราว คุณอยู่ในคิวรอค่ะ\n"
    "{queue}\n"
    "เมื่อได้สินค้าแล้ว จะแจ้งยอดที่ต้องชำระอีกครั้งนะคะ ขอบคุณค่ะ"
)
SHIPPED_TEXT = (
    "ออเดอร์ {orderNumber} จัดส่งแล้วค่ะ 📦 ขนส่ง {carrier} เลขพัสดุ {trackingNumber} ขอบคุณที่อุดหนุนค่ะ"
)
PAID_TEXT = "ได้รับชำระเงินออเดอร์ {orderNumber} แล้วค่ะ ยอด {total} {currency} กำลังจัดส่งให้นะคะ ขอบคุณค่ะ"


def render_message(template: str | None, fields: Mapping[str, str]) -> str:
    """Never raises: plain substitution (app/live/templates.py), cut to Messenger's limit."""
    return fill(template or DEFAULT_TEMPLATE, fields)


def queue_reply_job(session: AsyncSession, connection_id: uuid.UUID) -> None:
    """The connection's reply job once this transaction commits; the sweep cron catches a
    lost one. Requests coalesce into the one job still waiting (the outbox dedupes only jobs
    not yet started, so a request made while a job sends gets a job of its own); the short
    wait lets a burst of order changes share one run."""
    enqueue(
        session,
        REPLY_JOB,
        str(connection_id),
        dedupe_key=f"{REPLY_JOB}:{connection_id}",
        defer_seconds=REPLY_COALESCE_SECONDS,
    )


async def _order_fields(
    session: AsyncSession, order: MarketplaceOrder, social: SocialOrder
) -> tuple[dict[str, str], str | None]:
    lines = list(
        await session.scalars(
            select(SocialOrderLine)
            .where(SocialOrderLine.order_id == order.id, SocialOrderLine.active)
            .order_by(SocialOrderLine.sort_at, SocialOrderLine.sort_key, SocialOrderLine.id)
        )
    )
    currency = order.currency
    held = [
        f"- {line.code or line.name} x{line.reserved} = "
        f"{format_amount(line.unit_price * line.reserved, currency)}"
        for line in lines
        if line.reserved > 0
    ]
    places = await _places_in_line(session, order.id)
    waiting = [
        f"- {line.code or line.name} x{line.requested - line.reserved} "
        f"(คิวที่ {places.get(line.id, 1)})"
        for line in lines
        if line.requested > line.reserved
    ]
    template = None
    if social.session_id is not None:
        template = await session.scalar(
            select(LiveSession.reply_template).where(LiveSession.id == social.session_id)
        )
    else:
        # Messenger orders use the template of the connection's latest live.
        template = await session.scalar(
            select(LiveSession.reply_template)
            .where(
                LiveSession.connection_id == order.connection_id,
                LiveSession.reply_template.is_not(None),
            )
            .order_by(LiveSession.created_at.desc())
            .limit(1)
        )
    fields = {
        "buyerName": order.buyer_name or "",
        "orderNumber": f"#{order.id}",
        "lines": "\n".join(held) if held else "- (ยังไม่มีสินค้าที่ได้รับ)",
        "waitlist": ("รอคิว (สินค้าหมด):\n" + "\n".join(waiting) + "\n") if waiting else "",
        "queue": "\n".join(waiting),
        "total": format_amount(order.total or Decimal(0), currency),
        "currency": currency,
    }
    return fields, template


# A waiting line's place: 1 + the waiting lines of the same master SKU before it, first come
# first served across lives and carts, as the stock mover serves them.
_PLACES = text(
    "SELECT l.id, 1 + (SELECT count(*) FROM social_order_lines q "
    "JOIN marketplace_orders o ON o.id = q.order_id WHERE q.master_sku_id = l.master_sku_id "
    "AND q.active AND q.requested > q.reserved AND o.status = 'unpaid' "
    "AND (q.sort_at, q.sort_key, q.id) < (l.sort_at, l.sort_key, l.id)) AS place "
    "FROM social_order_lines l WHERE l.order_id = :order_id AND l.active "
    "AND l.requested > l.reserved AND l.master_sku_id IS NOT NULL"
)


async def _places_in_line(session: AsyncSession, order_id: int) -> dict[int, int]:
    return {
        row.id: int(row.place) for row in await session.execute(_PLACES, {"order_id": order_id})
    }


async def _text_for(session: AsyncSession, order: MarketplaceOrder, social: SocialOrder) -> str:
    fields, template = await _order_fields(session, order, social)
    if order.status == "cancelled":
        return fill(CANCELLED_TEXT, fields)
    if order.status == "pending":
        return fill(PAID_TEXT, fields)
    if order.status == "shipped":
        return fill(SHIPPED_TEXT, {**fields, **await _shipment(session, order.id)}, internal=_SHIP)
    if order.waiting_only:
        return fill(WAITING_TEXT, fields, internal=("queue",))
    return render_message(template, fields)


_SHIP = ("carrier", "trackingNumber")


async def _shipment(session: AsyncSession, order_id: int) -> dict[str, str]:
    """The carrier and tracking number of the order's latest shipment (the seller's own)."""
    row = (
        await session.execute(
            select(OrderFulfillment.carrier, OrderFulfillment.tracking_number)
            .where(OrderFulfillment.order_id == order_id, OrderFulfillment.status == "shipped")
            .order_by(OrderFulfillment.shipped_at.desc())
            .limit(1)
        )
    ).first()
    carrier, tracking = (row.carrier, row.tracking_number) if row else (None, None)
    return {"carrier": carrier or "-", "trackingNumber": tracking or "-"}


_CLAIM = text(
    "UPDATE social_replies SET status = 'sending', attempts = attempts + 1 WHERE id IN ("
    "SELECT id FROM social_replies WHERE connection_id = :connection_id "
    "AND status = 'pending' AND id > :after ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED) "
    "RETURNING id"
)


class SenderBusy(Exception):
    """Another job sends this connection's replies right now (one sender per connection
    keeps each buyer's messages in order); try again shortly."""


# An update waiting behind a newer one of the same order is covered by it (each message
# carries the order as it is when sent): one statement instead of a pass over each.
_SUPERSEDE = text(
    "UPDATE social_replies r SET status = 'superseded' WHERE r.connection_id = :connection_id "
    "AND r.status = 'pending' AND r.kind = 'update' AND EXISTS (SELECT 1 FROM social_replies n "
    "WHERE n.order_id = r.order_id AND n.status = 'pending' AND n.id > r.id)"
)
_SENDER_LOCK = text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))")
_SENDER_UNLOCK = text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))")


async def send_pending(wc: WorkerContext, connection_id: uuid.UUID) -> int:
    """Send the connection's pending replies; returns how many were sent."""
    key = {"key": f"live-replies:{connection_id}"}
    async with wc.database.engine.connect() as holder:
        if not await holder.scalar(_SENDER_LOCK, key):
            raise SenderBusy()
        await holder.commit()
        try:
            return await _send_all(wc, connection_id)
        finally:
            await holder.execute(_SENDER_UNLOCK, key)
            await holder.commit()


async def _send_all(wc: WorkerContext, connection_id: uuid.UUID) -> int:
    async with wc.sessionmaker() as session:
        connection = await session.get(MarketplaceConnection, connection_id)
        if connection is None or host_problem(connection, wc.settings) is not None:
            return 0  # no Page token goes to a host the connection was not made against
        credentials = decrypt_credentials(connection, wc.cipher)
    client = MessengerClient(
        credentials,
        base_url=wc.settings.facebook_graph_url,
        tuning=wc.settings.clients,
        http_client=wc.http,
        limiter=wc.limiter_for(connection_id, platform="facebook", app_key=credentials.api_key),
    )
    sent, after = 0, 0
    try:
        # Forward only: a row put back for a later try waits for the next run of the job.
        while True:
            async with wc.sessionmaker() as session:
                await session.execute(_SUPERSEDE, {"connection_id": connection_id})
                params = {"connection_id": connection_id, "after": after, "limit": BATCH}
                ids = sorted(row.id for row in await session.execute(_CLAIM, params))
                await session.commit()
            if not ids:
                return sent
            for reply_id in ids:
                try:
                    sent += await _send_one(wc, client, reply_id)
                except Exception as exc:
                    # A failing reply never blocks another (nor stays `sending`).
                    logger.exception("reply failed", extra={"reply_id": reply_id})
                    await _fail(wc, reply_id, f"{type(exc).__name__}: {exc}")
            after = ids[-1]
    finally:
        await client.aclose()


async def _send_one(wc: WorkerContext, client: MessengerClient, reply_id: int) -> int:
    async with wc.sessionmaker() as session:
        reply = await session.get(SocialReply, reply_id)
        assert reply is not None
        order = await session.get(MarketplaceOrder, reply.order_id)
        social = await session.get(SocialOrder, reply.order_id)
        if order is None or social is None:
            reply.status = "superseded"
            await session.commit()
            return 0
        delivered = await session.scalar(
            select(func.max(SocialReply.order_version)).where(
                SocialReply.order_id == order.id, SocialReply.status == "sent"
            )
        )
        if reply.kind == "update" and delivered is not None and delivered >= social.version:
            reply.status = "superseded"  # the buyer already has this version or a newer one
            await session.commit()
            return 0
        psid = social.psid
        if reply.kind == "update" and psid is None:
            first = await session.scalar(
                select(SocialReply.status).where(
                    SocialReply.order_id == order.id, SocialReply.kind == "private_reply"
                )
            )
            if first in ("pending", "sending") and reply.attempts < MAX_ATTEMPTS:
                reply.status = "pending"  # the private reply names the buyer's PSID first
                await session.commit()
                return 0
            return await _refuse(
                session, reply, social, order, "No Messenger thread with the buyer"
            )
        tag = None
        if reply.kind == "update":
            last_inbound = await session.scalar(
                select(MessengerThread.last_inbound_at).where(
                    MessengerThread.connection_id == order.connection_id,
                    MessengerThread.psid == psid,
                )
            )
            if last_inbound is None or last_inbound < datetime.now(UTC) - WINDOW:
                tag = POST_PURCHASE_UPDATE
        message = await _text_for(session, order, social)
        version = social.version
        reply.text = message
        reply.order_version = version
        reply.messaging_type = "MESSAGE_TAG" if tag else "RESPONSE"
        reply.recipient = (
            f"comment:{reply.comment_id}" if reply.kind == "private_reply" else f"psid:{psid}"
        )
        await session.commit()
        try:
            if reply.kind == "private_reply":
                result = await client.send_message(text=message, comment_id=reply.comment_id)
            else:
                result = await client.send_message(text=message, psid=psid, tag=tag)
        except MarketplaceError as exc:
            if exc.retryable and reply.attempts < MAX_ATTEMPTS:
                reply.status = "pending"  # a later run of the job tries again
                reply.error = exc.message[:1000]
                await session.commit()
                return 0
            return await _refuse(session, reply, social, order, exc.message)
        reply.status = "sent"
        reply.sent_at = datetime.now(UTC)
        reply.message_id = result.message_id
        reply.error = None
        if reply.kind == "private_reply" and result.recipient_id and social.psid is None:
            social.psid = result.recipient_id
        # Older versions still waiting are covered by what was just sent.
        await session.execute(
            update(SocialReply)
            .where(
                SocialReply.order_id == order.id,
                SocialReply.status == "pending",
                SocialReply.kind == "update",
                SocialReply.order_version <= version,
            )
            .values(status="superseded")
        )
        await session.commit()
        return 1


async def _fail(wc: WorkerContext, reply_id: int, message: str) -> None:
    async with wc.sessionmaker() as session:
        await session.execute(
            update(SocialReply)
            .where(SocialReply.id == reply_id, SocialReply.status == "sending")
            .values(status="failed", error=message[:1000])
        )
        await session.commit()


async def _refuse(
    session: AsyncSession,
    reply: SocialReply,
    social: SocialOrder,
    order: MarketplaceOrder,
    message: str,
) -> int:
    """Recorded on the reply and the order (its `raw.replyError`); not retried."""
    reply.status = "refused"
    reply.error = message[:1000]
    social.reply_error = message[:1000]
    raw: dict[str, Any] = dict(order.raw or {})
    raw["replyError"] = {"message": message[:1000], "at": datetime.now(UTC).isoformat()}
    order.raw = raw
    await session.commit()
    logger.info("reply refused", extra={"order_id": order.id, "reply_id": reply.id})
    return 0


async def due_connections(session: AsyncSession) -> list[uuid.UUID]:
    rows = await session.scalars(
        select(SocialReply.connection_id).where(SocialReply.status == "pending").distinct()
    )
    return list(rows)
