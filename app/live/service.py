"""Facebook live selling and Messenger carts: comments on a live video become order lines,
served first come, first served from the stock ledger; carts become orders.

Everything that touches one session's lines runs under a transaction-level advisory lock on
the session (webhook jobs run in parallel; comments of one live arrive together), then the
master SKU row locks in id order, the order every stock writer takes them in."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import ConflictError, FieldProblem, NotFoundError, ValidationFailed
from app.inventory.moves import (
    StockMover,
    commit_order,
    locked_skus,
    release_order,
    resolve_skus,
)
from app.jobs.outbox import enqueue
from app.live import orders as social_orders
from app.live.allocation import Claim, allocate
from app.live.parsing import ParsedLine, parse_comment
from app.live.schemas import (
    CommentOutcome,
    LiveCommentOut,
    LiveProductIn,
    LiveProductOut,
    LiveSessionCreate,
    LiveSessionOut,
    LiveSessionUpdate,
    SessionStatus,
)
from app.models import InventorySku, MarketplaceConnection, MarketplaceOrder
from app.models.live_comment import LiveComment
from app.models.live_session import LiveSession
from app.models.live_session_product import LiveSessionProduct
from app.models.messenger_thread import MessengerThread
from app.models.social_order import SocialOrder
from app.models.social_order_line import SocialOrderLine

logger = logging.getLogger("app.live")

PROCESSED = "processed"
IGNORED = "ignored"
# A captured order comment before its lines are placed (for milliseconds; not listed).
PENDING = "pending"
ALLOCATE_JOB = "allocate_live_comments"
ALLOCATION_BATCH = 2000
# Pending this long is taken as a lost allocation job by the sweep.
SWEEP_AFTER = timedelta(seconds=2)
# The allocation job stays this long after its last comment, looking for more every
# LINGER_POLL seconds: during a live comments keep coming, and one that lands while the job
# runs is placed by it rather than waiting for a new job (or the sweep).
LINGER_SECONDS = 1.0
LINGER_POLL = 0.02
# Meta sends unix seconds; some payloads carry ISO 8601 ("2026-12-01T10:00:00+0000").
_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


class NotASocialOrder(ConflictError):
    code = "not_a_social_order"

    def __init__(self) -> None:
        super().__init__(
            "Only live and Messenger orders are changed here; marketplace orders are read-only"
        )


class OrderStateConflict(ConflictError):
    code = "order_state_conflict"


class LivePostBusy(ConflictError):
    code = "live_session_exists"

    def __init__(self) -> None:
        super().__init__("This post already has an open live session; close it first")


# --- sessions API ---------------------------------------------------------------------------


async def _connection(session: AsyncSession, owner: str, connection_id: uuid.UUID) -> Any:
    connection = await session.get(MarketplaceConnection, connection_id)
    if connection is None or connection.user_id != owner:
        raise NotFoundError("Connection not found")
    if connection.platform_code != "facebook":
        raise ValidationFailed(
            "Live sessions are for Facebook connections",
            field_messages=[FieldProblem("connectionId", "must be a Facebook connection")],
        )
    return connection


async def _masters(
    session: AsyncSession, owner: str, products: list[LiveProductIn]
) -> dict[str, InventorySku]:
    skus = {p.sku for p in products}
    found = {
        m.sku: m
        for m in await session.scalars(
            select(InventorySku).where(InventorySku.user_id == owner, InventorySku.sku.in_(skus))
        )
    }
    problems = [
        FieldProblem(f"products.{i}.sku", f"No master SKU '{p.sku}' in the inventory")
        for i, p in enumerate(products)
        if p.sku not in found
    ]
    if problems:
        raise ValidationFailed("Unknown master SKU", field_messages=problems)
    return found


async def _owned(
    session: AsyncSession, owner: str, session_id: uuid.UUID, *, lock: bool = False
) -> LiveSession:
    live = await session.get(LiveSession, session_id, with_for_update=lock)
    if live is None or live.user_id != owner:
        raise NotFoundError("Live session not found")
    return live


async def _lock_session(session: AsyncSession, session_id: uuid.UUID) -> None:
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"live:{session_id}"},
    )


async def _try_lock_session(session: AsyncSession, session_id: uuid.UUID) -> bool:
    return bool(
        await session.scalar(
            text("SELECT pg_try_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"live:{session_id}"},
        )
    )


async def _render_session(session: AsyncSession, live: LiveSession) -> LiveSessionOut:
    products = list(
        await session.scalars(
            select(LiveSessionProduct)
            .where(LiveSessionProduct.session_id == live.id)
            .order_by(LiveSessionProduct.id)
        )
    )
    held: dict[int, tuple[int, int]] = {}
    if products:
        rows = await session.execute(
            select(
                SocialOrderLine.product_id,
                func.coalesce(func.sum(SocialOrderLine.reserved), 0),
                func.coalesce(func.sum(SocialOrderLine.requested - SocialOrderLine.reserved), 0),
            )
            .where(SocialOrderLine.session_id == live.id, SocialOrderLine.active)
            .group_by(SocialOrderLine.product_id)
        )
        held = {int(row[0]): (int(row[1]), int(row[2])) for row in rows if row[0] is not None}
    return LiveSessionOut(
        id=live.id,
        user_id=live.user_id,
        connection_id=live.connection_id,
        post_id=live.post_id,
        keyword=live.keyword,
        status=SessionStatus(live.status),
        currency=live.currency,
        reply_template=live.reply_template,
        starts_at=live.starts_at,
        ends_at=live.ends_at,
        closed_at=live.closed_at,
        created_at=live.created_at,
        updated_at=live.updated_at,
        products=[
            LiveProductOut(
                code=p.code,
                sku=p.sku,
                price=p.price,
                quantity=p.cap,
                reserved=held.get(p.id, (0, 0))[0],
                waiting=held.get(p.id, (0, 0))[1],
            )
            for p in products
        ],
    )


async def create_session(
    session: AsyncSession, owner: str, body: LiveSessionCreate
) -> LiveSessionOut:
    await _connection(session, owner, body.connection_id)
    masters = await _masters(session, owner, body.products)
    busy = await session.scalar(
        select(LiveSession.id).where(
            LiveSession.connection_id == body.connection_id,
            LiveSession.post_id == body.post_id,
            LiveSession.status == SessionStatus.OPEN,
        )
    )
    if busy is not None:
        raise LivePostBusy()
    live = LiveSession(
        user_id=owner,
        connection_id=body.connection_id,
        post_id=body.post_id,
        keyword=body.keyword,
        status=SessionStatus.OPEN.value,
        currency=body.currency,
        reply_template=body.reply_template,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
    )
    session.add(live)
    await session.flush()
    for product in body.products:
        session.add(_product_row(live.id, product, masters[product.sku]))
    await session.flush()
    await session.refresh(live)
    return await _render_session(session, live)


def _product_row(
    session_id: uuid.UUID, product: LiveProductIn, master: InventorySku
) -> LiveSessionProduct:
    return LiveSessionProduct(
        session_id=session_id,
        code=product.code,
        master_sku_id=master.id,
        sku=master.sku,
        price=product.price,
        cap=product.quantity,
    )


async def get_session(session: AsyncSession, owner: str, session_id: uuid.UUID) -> LiveSessionOut:
    return await _render_session(session, await _owned(session, owner, session_id))


async def list_sessions(
    session: AsyncSession,
    owner: str,
    *,
    connection_id: uuid.UUID | None,
    status: SessionStatus | None,
    limit: int,
) -> list[LiveSessionOut]:
    query = select(LiveSession).where(LiveSession.user_id == owner)
    if connection_id is not None:
        query = query.where(LiveSession.connection_id == connection_id)
    if status is not None:
        query = query.where(LiveSession.status == status.value)
    rows = await session.scalars(
        query.order_by(LiveSession.created_at.desc(), LiveSession.id).limit(limit)
    )
    return [await _render_session(session, live) for live in rows]


async def update_session(
    session: AsyncSession, owner: str, session_id: uuid.UUID, body: LiveSessionUpdate
) -> LiveSessionOut:
    live = await _owned(session, owner, session_id, lock=True)
    await _lock_session(session, live.id)
    connection = await session.get(MarketplaceConnection, live.connection_id)
    assert connection is not None
    await allocate_pending(session, connection, live)
    if body.products:
        if live.status != SessionStatus.OPEN:
            raise OrderStateConflict("A closed live session takes no new products")
        masters = await _masters(session, owner, body.products)
        existing = {
            p.code: p
            for p in await session.scalars(
                select(LiveSessionProduct).where(LiveSessionProduct.session_id == live.id)
            )
        }
        rebalance: list[LiveSessionProduct] = []
        for product in body.products:
            row = existing.get(product.code)
            if row is None:
                session.add(_product_row(live.id, product, masters[product.sku]))
                continue
            if row.master_sku_id != masters[product.sku].id:
                raise ValidationFailed(
                    "A code keeps its SKU",
                    field_messages=[
                        FieldProblem("products", f"code {product.code} is {row.sku} in this live")
                    ],
                )
            row.price = product.price
            if row.cap != product.quantity:
                row.cap = product.quantity
                rebalance.append(row)
        await session.flush()
        if rebalance:
            # A raised cap serves the waiting list (a lowered one takes nothing back).
            await social_orders.settle_orders(session, await _serve(session, connection, rebalance))
    if body.reply_template is not None:
        live.reply_template = body.reply_template or None
    if body.ends_at is not None:
        live.ends_at = body.ends_at
    if body.status is SessionStatus.CLOSED and live.status != SessionStatus.CLOSED:
        live.status = SessionStatus.CLOSED.value
        live.closed_at = datetime.now(UTC)
    elif body.status is SessionStatus.OPEN and live.status != SessionStatus.OPEN:
        raise OrderStateConflict("A closed live session stays closed; open a new one")
    await session.flush()
    await session.refresh(live)
    return await _render_session(session, live)


async def list_comments(
    session: AsyncSession, owner: str, session_id: uuid.UUID, *, limit: int, after: int | None
) -> list[LiveCommentOut]:
    live = await _owned(session, owner, session_id)
    # A pending comment is listed once placed (milliseconds later).
    query = select(LiveComment).where(LiveComment.session_id == live.id, ~LiveComment.pending)
    rows = await session.scalars(
        query.order_by(LiveComment.commented_at, LiveComment.comment_id)
        .offset(after or 0)
        .limit(limit)
    )
    return [
        LiveCommentOut(
            comment_id=c.comment_id,
            buyer_id=c.buyer_id,
            buyer_name=c.buyer_name,
            message=c.message,
            outcome=CommentOutcome(c.outcome),
            order_id=c.order_id,
            commented_at=c.commented_at,
        )
        for c in rows
    ]


# --- serving the queue ----------------------------------------------------------------------


async def _serve(
    session: AsyncSession,
    connection: MarketplaceConnection,
    products: Collection[LiveSessionProduct],
) -> set[int]:
    """Recompute who holds each product's units (see allocation.py) and move the stock;
    returns the orders whose lines changed. The caller holds the session lock. Three
    statements whatever the number of products: a burst touches them all."""
    if not products:
        return set()
    ordered = sorted(products, key=lambda p: p.id)
    ids = [p.id for p in ordered]
    async with locked_skus(
        session,
        {p.master_sku_id for p in ordered},
        connection_id=connection.id,
        platform_code=social_orders.PLATFORM,
    ) as mover:
        held = {row.product_id: row for row in await session.execute(_HELD, {"products": ids})}
        # Rows read: any unit a product may get is free now or held by the products sharing
        # its SKU, so that bound never leaves out a line that could be served.
        sharing: dict[int, int] = defaultdict(int)
        for product in ordered:
            sharing[product.master_sku_id] += (
                int(held[product.id].held) if product.id in held else 0
            )
        bounds = [mover.states[p.master_sku_id].free + sharing[p.master_sku_id] for p in ordered]
        queues: dict[int, list[Any]] = defaultdict(list)
        for row in await session.execute(_QUEUE, {"products": ids, "pools": bounds}):
            queues[row.product_id].append(row)
        changed: list[tuple[int, int]] = []
        touched: set[int] = set()
        for product in ordered:
            figures = held.get(product.id)
            changes = _serve_product(
                mover, product, queues[product.id], int(figures.held) if figures else 0
            )
            changed += [(line.id, units) for line, units in changes]
            touched |= {line.order_id for line, _ in changes}
        if changed:
            await session.execute(
                _SET_RESERVED,
                {"ids": [i for i, _ in changed], "reserved": [units for _, units in changed]},
            )
    return touched


# The lines that can hold units after serving: those holding some now, and those waiting
# whose place in the queue is within the pool (the queue before them asks for less than the
# pool). Lines further back get nothing and have nothing, so they are not even read.
_QUEUE = text("""
SELECT product_id, id, order_id, requested, reserved, pinned FROM (
    SELECT l.product_id, l.id, l.order_id, l.reserved, l.sort_at, l.sort_key, p.pool,
        CASE WHEN l.active AND o.status = 'unpaid' THEN l.requested ELSE 0 END AS requested,
        (l.active AND o.status NOT IN ('unpaid', 'cancelled')) AS pinned,
        COALESCE(sum(CASE WHEN l.active AND o.status = 'unpaid' THEN l.requested ELSE 0 END)
            OVER (PARTITION BY l.product_id ORDER BY l.sort_at, l.sort_key, l.id
                  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before
    FROM unnest(CAST(:products AS bigint[]), CAST(:pools AS integer[])) AS p(product_id, pool)
    JOIN social_order_lines l ON l.product_id = p.product_id
    JOIN marketplace_orders o ON o.id = l.order_id
    WHERE l.active OR l.reserved > 0
) q
WHERE reserved > 0 OR (requested > 0 AND before < pool)
ORDER BY product_id, sort_at, sort_key, id""")
_HELD = text(
    "SELECT l.product_id, COALESCE(sum(l.reserved), 0) AS held, COALESCE(sum(l.reserved) "
    "FILTER (WHERE l.active AND o.status NOT IN ('unpaid', 'cancelled')), 0) AS pinned "
    "FROM social_order_lines l JOIN marketplace_orders o ON o.id = l.order_id "
    "WHERE l.product_id = ANY(CAST(:products AS bigint[])) AND l.reserved > 0 "
    "GROUP BY l.product_id"
)
_SET_RESERVED = text(
    "UPDATE social_order_lines l SET reserved = u.reserved "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:reserved AS integer[])) AS u(id, reserved) "
    "WHERE l.id = u.id"
)


def _serve_product(
    moves: StockMover, product: LiveSessionProduct, rows: Sequence[Any], held: int
) -> list[tuple[Any, int]]:
    """The lines of one product's queue whose holding changes, with what they hold now."""
    state = moves.states[product.master_sku_id]
    room = state.free if product.cap is None else min(state.free, product.cap - held)
    queue = [Claim(r.id, r.requested, r.reserved, pinned=r.pinned) for r in rows]
    lines = {r.id: r for r in rows}
    targets = allocate(queue, max(0, room))
    changed = [(lines[i], units) for i, units in targets.items() if units != lines[i].reserved]
    note = f"live {product.code}"
    # Releases first, so a unit given up by one line is free for the next.
    for line, units in sorted(changed, key=lambda c: c[1] - c[0].reserved):
        if units < line.reserved:
            moves.release(line.order_id, product.master_sku_id, line.reserved - units, note)
        else:
            moves.reserve(line.order_id, product.master_sku_id, units - line.reserved, note)
    return changed


# --- Page events ----------------------------------------------------------------------------


def _as_time(value: Any, fallback: datetime) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        # Messenger timestamps are milliseconds, feed times seconds.
        seconds = value / 1000 if value > 10**11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return fallback
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("+0000", "+00:00"))
        except ValueError:
            return fallback
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return fallback


def _text(value: Any, limit: int) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    cleaned = str(value).replace("\x00", "")
    return cleaned[:limit] or None


def _post_ids(post_id: str) -> list[str]:
    """Graph names a Page post `<page id>_<post id>`; a seller may give either form."""
    return [post_id, post_id.split("_", 1)[1]] if "_" in post_id else [post_id]


async def handle_page_event(
    session: AsyncSession, connection_id: uuid.UUID, event_type: str, payload: dict[str, Any]
) -> str:
    """Process one stored Page event (one `entry`: feed changes or Messenger events) in the
    caller's transaction; returns the webhook status to record."""
    connection = await session.get(MarketplaceConnection, connection_id)
    if connection is None or connection.platform_code != "facebook":
        return IGNORED
    handled = False
    seen = _Seen()
    for entry in payload.get("entry") or []:
        if not isinstance(entry, dict):
            continue
        now = datetime.now(UTC)
        entry_time = _as_time(entry.get("time"), now)
        for change in entry.get("changes") or []:
            if isinstance(change, dict) and change.get("field") == "feed":
                value = change.get("value")
                if isinstance(value, dict):
                    handled |= await _feed_change(session, connection, value, entry_time, seen)
        for event in entry.get("messaging") or []:
            if isinstance(event, dict):
                handled |= await _messaging_event(session, connection, event, now)
    return PROCESSED if handled else IGNORED


async def _session_for(
    session: AsyncSession, connection_id: uuid.UUID, post_id: str, comment_id: str, verb: str
) -> LiveSession | None:
    """The open session of the post; for an edit or removal also a closed one that holds
    the comment (its lines still hold stock)."""
    ids = _post_ids(post_id)
    live = await session.scalar(
        select(LiveSession).where(
            LiveSession.connection_id == connection_id,
            LiveSession.post_id.in_(ids),
            LiveSession.status == SessionStatus.OPEN,
        )
    )
    if live is not None or verb == "add":
        return live
    return await session.scalar(
        select(LiveSession)
        .join(LiveComment, LiveComment.session_id == LiveSession.id)
        .where(
            LiveSession.connection_id == connection_id,
            LiveSession.post_id.in_(ids),
            LiveComment.comment_id == comment_id,
        )
        .limit(1)
    )


@dataclass
class _Seen:
    """What one delivery's comments share (Meta batches many into one): the open session of
    a post and its codes, read once per delivery; the lives whose job was asked for."""

    open_sessions: dict[str, LiveSession | None] = field(default_factory=dict)
    codes: dict[uuid.UUID, dict[str, LiveSessionProduct]] = field(default_factory=dict)
    queued: set[uuid.UUID] = field(default_factory=set)


async def _feed_change(
    session: AsyncSession,
    connection: MarketplaceConnection,
    value: dict[str, Any],
    entry_time: datetime,
    seen: _Seen,
) -> bool:
    """A new comment is captured without waiting for the session lock: one that is not an
    order is final at once; an order comment waits (`pending`) for the allocation, done here
    when the lock is free, else by the allocation job. Edits and removals wait for the lock."""
    verb = str(value.get("verb") or "")
    post_id = _text(value.get("post_id"), 128)
    comment_id = _text(value.get("comment_id"), 128)
    if value.get("item") != "comment" or not post_id or not comment_id:
        return False
    if verb not in ("add", "edited", "remove"):
        return False
    sender = value.get("from") if isinstance(value.get("from"), dict) else {}
    assert isinstance(sender, dict)
    buyer_id = _text(sender.get("id"), 128)
    if buyer_id == connection.shop_id:
        return False  # the Page answering its own live
    if verb == "add":
        if post_id not in seen.open_sessions:
            seen.open_sessions[post_id] = await _session_for(
                session, connection.id, post_id, comment_id, verb
            )
        live = seen.open_sessions[post_id]
    else:
        live = await _session_for(session, connection.id, post_id, comment_id, verb)
    if live is None:
        return False
    commented_at = _as_time(value.get("created_time"), entry_time)
    message = _text(value.get("message"), 8000) or ""
    capture = {
        "session_id": live.id,
        "comment_id": comment_id,
        "buyer_id": buyer_id or "unknown",
        "buyer_name": _text(sender.get("name"), 255),
        "message": message,
        "commented_at": commented_at,
        "changed_at": entry_time,
    }
    if verb == "add":
        if live.id not in seen.codes:
            seen.codes[live.id] = await _codes(session, live.id)
        codes = seen.codes[live.id]
        is_order = bool(_lines_of(live, codes, message, commented_at))
        captured = await session.scalar(
            pg_insert(LiveComment)
            .values(
                **capture,
                pending=is_order,
                outcome=PENDING if is_order else CommentOutcome.NOT_AN_ORDER.value,
                processed_at=func.clock_timestamp(),
            )
            .on_conflict_do_nothing(index_elements=["session_id", "comment_id"])
            .returning(LiveComment.id)
        )
        if captured is not None and is_order and live.id not in seen.queued:
            queue_allocation(session, live.id)
            seen.queued.add(live.id)
        return True
    # An edit or removal is captured the same way (the allocation withdraws the comment's
    # lines and places the new ones); one older than the change applied, or a change after
    # the removal, is dropped. One before its "add" (webhooks arrive in any order) is the row.
    removed = verb == "remove"
    statement = pg_insert(LiveComment).values(
        **capture,
        pending=True,
        outcome=CommentOutcome.REMOVED.value if removed else PENDING,
        processed_at=func.clock_timestamp(),
    )
    changes: dict[str, Any] = {
        "pending": True,
        "changed_at": statement.excluded.changed_at,
        "processed_at": statement.excluded.processed_at,
    }
    if removed:
        changes["outcome"] = CommentOutcome.REMOVED.value
    else:
        changes["message"] = statement.excluded.message
    captured = await session.scalar(
        statement.on_conflict_do_update(
            index_elements=["session_id", "comment_id"],
            set_=changes,
            where=(LiveComment.changed_at < statement.excluded.changed_at)
            & (LiveComment.outcome != CommentOutcome.REMOVED.value),
        ).returning(LiveComment.id)
    )
    if captured is not None and live.id not in seen.queued:
        queue_allocation(session, live.id)
        seen.queued.add(live.id)
    return True


async def _codes(session: AsyncSession, session_id: uuid.UUID) -> dict[str, LiveSessionProduct]:
    rows = await session.scalars(
        select(LiveSessionProduct).where(LiveSessionProduct.session_id == session_id)
    )
    return {p.code: p for p in rows}


def _lines_of(
    live: LiveSession, codes: Collection[str], message: str, commented_at: datetime
) -> list[ParsedLine]:
    in_window = (live.starts_at or commented_at) <= commented_at <= (live.ends_at or _FAR_FUTURE)
    return parse_comment(message, live.keyword, codes) if in_window else []


_WITHDRAW = text(
    "UPDATE social_order_lines SET active = false "
    "WHERE comment_row_id = ANY(CAST(:comments AS bigint[])) AND active "
    "RETURNING order_id, product_id"
)


async def allocate_pending(
    session: AsyncSession, connection: MarketplaceConnection, live: LiveSession
) -> int:
    """Place every pending comment of the session (the caller holds the session lock) in
    comment-time order, in one pass: edited and removed comments give up their lines, new
    lines are added, each product's queue is served once, each order settled once."""
    pending = list(
        await session.scalars(
            select(LiveComment)
            .where(LiveComment.session_id == live.id, LiveComment.pending)
            .order_by(LiveComment.commented_at, LiveComment.comment_id)
            .limit(ALLOCATION_BATCH)
        )
    )
    if not pending:
        return 0
    codes = await _codes(session, live.id)
    by_id = {p.id: p for p in codes.values()}
    touched_products: dict[int, LiveSessionProduct] = {}
    touched_orders: set[int] = set()
    # Changes to comments already on an order: a paid or cancelled order is the seller's to
    # change now, not the comment's; the others give up their lines first.
    placed_before = {c.order_id for c in pending if c.order_id is not None}
    closed: set[int] = set()
    if placed_before:
        closed = set(
            await session.scalars(
                select(SocialOrder.order_id).where(
                    SocialOrder.order_id.in_(placed_before), ~SocialOrder.is_open
                )
            )
        )
    changing = [c for c in pending if c.order_id is not None and c.order_id not in closed]
    if changing:
        rows = await session.execute(_WITHDRAW, {"comments": [c.id for c in changing]})
        for row in rows:
            touched_orders.add(row.order_id)
            if row.product_id in by_id:
                touched_products[row.product_id] = by_id[row.product_id]
    orders = await _open_orders(session, live.id, {c.buyer_id for c in pending})
    placed: list[tuple[LiveComment, list[ParsedLine]]] = []
    first_of: dict[str, LiveComment] = {}
    for comment in pending:
        comment.pending = False
        if comment.order_id in closed:
            touched_orders.add(comment.order_id)  # its outcome is read again from its lines
            continue
        if comment.outcome == CommentOutcome.REMOVED:
            continue
        wanted = _lines_of(live, codes, comment.message, comment.commented_at)
        if not wanted:
            comment.outcome = CommentOutcome.NOT_AN_ORDER.value
            continue
        placed.append((comment, wanted))
        if comment.buyer_id not in orders:
            first_of.setdefault(comment.buyer_id, comment)
    # The buyers' first CFs in this batch open their orders, all in one statement.
    created = await social_orders.create_orders(
        session, [_new_order(connection, live, comment) for comment in first_of.values()]
    )
    for buyer_id, comment in first_of.items():
        orders[buyer_id] = created[_external_id(live, comment)]
    new_lines: list[dict[str, Any]] = []
    for comment, wanted in placed:
        order_id = orders[comment.buyer_id]
        comment.order_id = order_id
        comment.outcome = CommentOutcome.WAITLISTED.value  # until its lines are served
        for line in wanted:
            product = codes[line.code]
            new_lines.append(
                {
                    "order_id": order_id,
                    "session_id": live.id,
                    "product_id": product.id,
                    "comment_row_id": comment.id,
                    "master_sku_id": product.master_sku_id,
                    "code": product.code,
                    "sku": product.sku,
                    "name": f"{product.code} {product.sku}",
                    "unit_price": product.price,
                    "requested": line.quantity,
                    "reserved": 0,
                    "sort_at": comment.commented_at,
                    "sort_key": comment.comment_id,
                    "active": True,
                }
            )
            touched_products[product.id] = product
        touched_orders.add(order_id)
    if new_lines:
        # One statement for the batch's lines (no objects: the queue is served in SQL).
        await session.execute(insert(SocialOrderLine), new_lines)
    await session.flush()
    touched_orders |= await _serve(session, connection, touched_products.values())
    await social_orders.settle_orders(session, touched_orders)
    if pending:
        # Evaluated at the flush: when the lines were on the orders (the benchmark's end).
        await session.execute(
            update(LiveComment)
            .where(LiveComment.id.in_([c.id for c in pending]))
            .values(processed_at=func.clock_timestamp())
        )
    return len(pending)


async def _open_orders(
    session: AsyncSession, session_id: uuid.UUID, buyers: Collection[str]
) -> dict[str, int]:
    if not buyers:
        return {}
    rows = await session.execute(
        select(SocialOrder.buyer_id, SocialOrder.order_id).where(
            SocialOrder.session_id == session_id,
            SocialOrder.buyer_id.in_(list(buyers)),
            SocialOrder.is_open,
        )
    )
    return {row.buyer_id: row.order_id for row in rows}


def _external_id(live: LiveSession, comment: LiveComment) -> str:
    return f"live:{live.id}:{comment.comment_id}"[:128]


def _new_order(
    connection: MarketplaceConnection, live: LiveSession, comment: LiveComment
) -> social_orders.NewOrder:
    """The buyer's open order in this session, opened by their first CF."""
    return social_orders.NewOrder(
        connection_id=connection.id,
        user_id=connection.user_id,
        channel=social_orders.LIVE,
        external_order_id=_external_id(live, comment),
        buyer_id=comment.buyer_id,
        buyer_name=comment.buyer_name,
        currency=live.currency,
        placed_at=comment.commented_at,
        session_id=live.id,
        first_comment_id=comment.comment_id,
        raw={"sessionId": str(live.id), "postId": live.post_id, "commentId": comment.comment_id},
    )


class LiveBusy(Exception):
    """Another transaction places this live's comments right now: try again shortly (it
    may have read the pending comments before ours committed)."""


async def allocate_session(
    sessionmaker: async_sessionmaker[AsyncSession], session_id: uuid.UUID, *, linger: float = 0.0
) -> int:
    """The allocation job: place the session's pending comments until none is left (a
    comment committed while a pass ran is taken by the next pass). It never waits for the
    lock, so jobs waiting on one busy live cannot fill the worker and stall the webhooks;
    raises LiveBusy instead (the job retries). `linger`: see LINGER_SECONDS."""
    placed = 0
    idle_since: float | None = None
    loop = asyncio.get_running_loop()
    while True:
        async with sessionmaker() as session:
            live = await session.get(LiveSession, session_id)
            if live is None:
                return placed
            connection = await session.get(MarketplaceConnection, live.connection_id)
            assert connection is not None
            if not await _try_lock_session(session, live.id):
                raise LiveBusy()
            done = await allocate_pending(session, connection, live)
            await session.commit()
        placed += done
        if done:
            idle_since = None
            continue
        idle_since = idle_since or loop.time()
        while loop.time() - idle_since < linger:
            await asyncio.sleep(LINGER_POLL)
            if await _has_pending(sessionmaker, session_id):
                break
        else:
            return placed


async def _has_pending(
    sessionmaker: async_sessionmaker[AsyncSession], session_id: uuid.UUID
) -> bool:
    async with sessionmaker() as session:
        found = await session.scalar(
            select(LiveComment.id)
            .where(LiveComment.session_id == session_id, LiveComment.pending)
            .limit(1)
        )
    return found is not None


async def sessions_with_pending(session: AsyncSession) -> list[uuid.UUID]:
    rows = await session.scalars(
        select(LiveComment.session_id)
        .where(LiveComment.pending, LiveComment.processed_at < func.now() - SWEEP_AFTER)
        .distinct()
    )
    return list(rows)


def queue_allocation(session: AsyncSession, session_id: uuid.UUID) -> None:
    """The session's allocation job, once this transaction commits: one job places every
    comment pending by then (asking again while it is queued is a no-op)."""
    enqueue(session, ALLOCATE_JOB, str(session_id), dedupe_key=f"live-allocate:{session_id}")


# --- Messenger ------------------------------------------------------------------------------


async def _messaging_event(
    session: AsyncSession,
    connection: MarketplaceConnection,
    event: dict[str, Any],
    now: datetime,
) -> bool:
    sender = event.get("sender") if isinstance(event.get("sender"), dict) else None
    psid = _text(sender.get("id"), 128) if sender else None
    if not psid or psid == connection.shop_id:
        return False  # echoes of the Page's own messages
    message = event.get("message")
    if isinstance(message, dict) and message.get("is_echo"):
        return False
    at = min(_as_time(event.get("timestamp"), now), now)
    # Any message from the buyer opens Meta's 24-hour window for standard messages.
    await _open_window(session, connection.id, psid, at)
    cart = event.get("order")
    if isinstance(cart, dict):
        await _cart(session, connection, psid, cart, event, at)
    return True


async def _open_window(
    session: AsyncSession, connection_id: uuid.UUID, psid: str, at: datetime
) -> None:
    statement = pg_insert(MessengerThread).values(
        connection_id=connection_id, psid=psid, last_inbound_at=at
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["connection_id", "psid"],
            set_={"last_inbound_at": func.greatest(MessengerThread.last_inbound_at, at)},
        )
    )


def _price(value: Any) -> Decimal:
    try:
        price = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(0)
    return price if price.is_finite() and price >= 0 else Decimal(0)


async def _cart(
    session: AsyncSession,
    connection: MarketplaceConnection,
    psid: str,
    cart: dict[str, Any],
    event: dict[str, Any],
    at: datetime,
) -> None:
    """A `send_cart`: one unpaid order; each product reserves what is on the shelf and waits
    for the rest. The event's time names the order, so a redelivered cart is the same one."""
    raw_products = [p for p in cart.get("products") or [] if isinstance(p, dict)]
    currency = next(
        (str(p["currency"]).upper()[:3] for p in raw_products if p.get("currency")), "THB"
    )
    stamp = (
        event.get("timestamp")
        if isinstance(event.get("timestamp"), int)
        else int(at.timestamp() * 1000)
    )
    external_id = f"messenger:{psid}:{stamp}"[:128]
    created = await social_orders.create_orders(
        session,
        [
            social_orders.NewOrder(
                connection_id=connection.id,
                user_id=connection.user_id,
                channel=social_orders.MESSENGER,
                external_order_id=external_id,
                buyer_id=psid,
                buyer_name=None,
                currency=currency,
                placed_at=at,
                psid=psid,
                raw={"note": _text(cart.get("note"), 2000), "products": raw_products},
            )
        ],
    )
    if external_id not in created:
        return  # a redelivered cart
    order_id = created[external_id]
    retailer_ids = {str(p.get("retailer_id")) for p in raw_products if p.get("retailer_id")}
    masters = await resolve_skus(session, connection.id, connection.user_id, retailer_ids)
    lines = []
    for index, product in enumerate(raw_products):
        retailer_id = _text(product.get("retailer_id"), 128)
        try:
            quantity = max(0, min(999, int(product.get("quantity") or 1)))
        except (TypeError, ValueError):
            quantity = 1
        if quantity == 0:
            continue
        line = SocialOrderLine(
            order_id=order_id,
            master_sku_id=masters.get(retailer_id) if retailer_id else None,
            sku=retailer_id,
            name=_text(product.get("name"), 512) or (retailer_id or "product"),
            external_product_id=_text(product.get("id"), 128),
            unit_price=_price(product.get("unit_price")),
            requested=quantity,
            reserved=0,
            sort_at=at,
            sort_key=f"{stamp}:{index:04d}",
            active=True,
        )
        session.add(line)
        lines.append(line)
    await session.flush()
    stocked = [line for line in lines if line.master_sku_id is not None]
    if stocked:
        async with locked_skus(
            session,
            {line.master_sku_id for line in stocked if line.master_sku_id},
            connection_id=connection.id,
            platform_code=social_orders.PLATFORM,
        ) as mover:
            for line in stocked:
                assert line.master_sku_id is not None
                units = min(line.requested, mover.states[line.master_sku_id].free)
                mover.reserve(order_id, line.master_sku_id, units, "messenger cart")
                line.reserved = units
    for line in lines:
        if line.master_sku_id is None:
            # Not a product of the seller's inventory: sold as asked, no stock to hold.
            line.reserved = line.requested
    await session.flush()
    await social_orders.refresh_orders(session, [order_id])


# --- the seller's actions -------------------------------------------------------------------


async def _social(
    session: AsyncSession, owner: str, order_id: int
) -> tuple[MarketplaceOrder, SocialOrder]:
    order = await session.get(MarketplaceOrder, order_id)
    if order is None or order.user_id != owner:
        raise NotFoundError("Order not found")
    if order.channel not in social_orders.SOCIAL_CHANNELS:
        raise NotASocialOrder()
    if order.archived_at is not None:
        raise OrderStateConflict("The order is archived")
    social = await session.get(SocialOrder, order_id)
    assert social is not None
    if social.session_id is not None:
        await _lock_session(session, social.session_id)
        live = await session.get(LiveSession, social.session_id)
        connection = await session.get(MarketplaceConnection, order.connection_id)
        if live is not None and connection is not None:
            await allocate_pending(session, connection, live)
    await session.refresh(order, with_for_update=True)
    await session.refresh(social)
    return order, social


# In SQL, not through loaded lines: `reserved` is written by the allocation in SQL, so a
# line object loaded earlier in the transaction may hold a stale figure.
_CANCELLED_LINES = text(
    "UPDATE social_order_lines SET active = false, reserved = 0 WHERE order_id = :order_id"
)


async def mark_paid(session: AsyncSession, owner: str, order_id: int) -> int:
    """unpaid -> pending (paid, to be packed). Its waiting units leave the waiting list: a
    paid order is what the buyer paid for; a further CF starts a new order."""
    order, social = await _social(session, owner, order_id)
    if order.status != "unpaid":
        raise OrderStateConflict(
            f"Only an unpaid order can be marked paid; this one is {order.status}"
        )
    if order.waiting_only:
        raise OrderStateConflict(
            "Every line of this order waits for stock: nothing is the buyer's to pay yet"
        )
    now = datetime.now(UTC)
    await commit_order(session, order.id)
    order.status = "pending"
    order.raw_status = "paid"
    order.paid_at = now
    social.is_open = False
    await session.flush()
    await social_orders.refresh_orders(session, [order.id])
    return order.id


async def cancel(session: AsyncSession, owner: str, order_id: int) -> int:
    """Cancel and give the stock back; the units go to the first lines waiting for them."""
    order, social = await _social(session, owner, order_id)
    if order.status not in ("unpaid", "pending"):
        raise OrderStateConflict(f"This order is {order.status} and cannot be cancelled")
    connection = await session.get(MarketplaceConnection, order.connection_id)
    assert connection is not None
    # Out of the queue first, so the units it gives back go to the others waiting (first
    # come, first served, whichever live or cart they are on) and not to its own lines.
    await session.execute(_CANCELLED_LINES, {"order_id": order.id})
    order.status = "cancelled"
    order.raw_status = "cancelled_by_seller"
    social.is_open = False
    await session.flush()
    await release_order(session, order.id, connection.id, "order cancelled by the seller")
    # The cancelled order's comments keep their outcome and order id: what happened, shown.
    await social_orders.settle_orders(session, [order.id])
    return order.id
