"""The drain: one job per shop takes everything that waits for it, in passes.

Each pass claims up to `CLAIM_LIMIT` waiting events of the connection (status `received`, due,
`FOR UPDATE SKIP LOCKED`, a lease written to `next_attempt_at`) and commits; reads the orders
they name in bulk with the sync's own calls and no transaction open; then writes the orders
through the sync's ingest and every event's outcome in one short transaction. Passes repeat
until nothing waits. A worker that dies mid-pass leaves its events `received` with a lease
that runs out, and the sweep queues a drain for them.

Exactly once: the ingest upserts on (connection, order) and never replaces a newer platform
update time with an older one, and only the pass still holding an event's lease records it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts import service as alerts
from app.connections.credentials import connection_client
from app.connections.repository import mark_status, status_for_failure
from app.errors import is_database_unavailable
from app.fulfillment import service as fulfillment_service
from app.jobs.policy import RetryPolicy
from app.live.service import handle_page_event
from app.metrics import service as metrics
from app.models import MarketplaceConnection
from app.models.enums import ConnectionStatus
from app.orders.ingest import upsert_orders
from app.platforms.base import MarketplaceClient, OrderFailure, OrdersRead, ReadHint
from app.platforms.errors import MarketplaceError
from app.platforms.types import NormalizedOrder, PlatformCode
from app.platforms.webhooks import EventKind, WebhookEvent, parser_for
from app.products.service import apply_product_push
from app.webhooks import repository
from app.webhooks.repository import Claimed, Outcome
from app.webhooks.schemas import WebhookStatus
from app.webhooks.service import queue_drain, stored_document
from app.worker_context import WorkerContext

logger = logging.getLogger("app.webhooks")

# Events taken per pass; the next pass is claimed and read while this one is written, so
# smaller passes overlap more. Lazada pushes once per order line (about 3 events an order)
# and fills its 50-order item calls only with large passes; Meta has one event per order and
# its passes share one listing; Shopee reads 50 orders a call whatever the pass.
CLAIM_LIMITS = {
    PlatformCode.SHOPEE: 500,
    PlatformCode.LAZADA: 1000,
    PlatformCode.FACEBOOK: 200,
    PlatformCode.TIKTOK: 500,
}
CLAIM_LIMIT = 500  # any other platform
# A claim is renewed while its reads run; a dead worker's claim is free again this long after
# its last renewal (and the sweep, every 10 s, queues a drain for it).
LEASE_SECONDS = 30.0
RENEW_EVERY_SECONDS = LEASE_SECONDS / 3

_IGNORED_NOTES = {
    EventKind.SOCIAL: "Not a Page event Omni Sales acts on",
    EventKind.OTHER: "Not an event Omni Sales acts on",
}


class OrderNotReturned(Exception):
    """The platform did not return the pushed order (yet): worth another try."""


@dataclass(slots=True)
class _Pass:
    """One claim: the connection as it was when claimed, its events, and their lease."""

    connection_id: uuid.UUID
    user_id: str
    platform: PlatformCode
    lease: datetime
    events: list[tuple[Claimed, WebhookEvent | None]]
    read: OrdersRead = field(default_factory=OrdersRead)
    read_error: Exception | None = None

    @property
    def order_events(self) -> list[tuple[Claimed, WebhookEvent]]:
        return [(c, e) for c, e in self.events if e is not None and e.kind is EventKind.ORDER]


def _event_of(row: Claimed, platform: PlatformCode) -> WebhookEvent | None:
    events = parser_for(platform).parse(stored_document(row.payload), b"")
    return events[0] if events else None


def _lease_from_now() -> datetime:
    return datetime.now(UTC) + timedelta(seconds=LEASE_SECONDS)


async def drain(wc: WorkerContext, connection_id: uuid.UUID) -> dict[str, int]:
    """Process every event of the connection that is due, pass after pass, until none is;
    returns how many events ended in each status (`received`: backing off for a retry)."""
    totals: Counter[str] = Counter()
    taken: list[int] = []
    # One client for the run: a platform's client may keep what it listed for later passes.
    client: MarketplaceClient | None = None
    # As the sync does, the next pass is claimed and read while the last one is written.
    writing: asyncio.Task[Counter[str]] | None = None
    try:
        while True:
            claim = await _claim(wc, connection_id, taken)
            if claim is None:
                break
            # Each event is tried once per drain: one that backs off waits for its retry.
            taken += [row.id for row, _ in claim.events]
            if claim.order_events:
                client = client or await _client(wc, connection_id)
                await _read(wc, claim, client)
            if writing is not None:
                totals.update(await writing)
            writing = asyncio.create_task(_write(wc, claim))
        if writing is not None:
            totals.update(await writing)
            writing = None
    finally:
        if writing is not None:
            writing.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writing
        if client is not None:
            await client.aclose()
    return dict(totals)


async def _client(wc: WorkerContext, connection_id: uuid.UUID) -> MarketplaceClient | None:
    async with wc.sessionmaker() as session:
        connection = await repository.connection(session, connection_id)
    return connection_client(wc, connection) if connection is not None else None


async def _claim(wc: WorkerContext, connection_id: uuid.UUID, taken: Sequence[int]) -> _Pass | None:
    while True:
        async with wc.sessionmaker() as session:
            connection = await repository.connection(session, connection_id)
            lease = _lease_from_now()
            limit = CLAIM_LIMIT
            if connection is not None:
                limit = CLAIM_LIMITS.get(PlatformCode(connection.platform_code), CLAIM_LIMIT)
            rows = await repository.claim(session, connection_id, limit, lease, taken)
            if not rows:
                return None
            if connection is not None and connection.status != ConnectionStatus.DISCONNECTED:
                await session.commit()
                platform = PlatformCode(connection.platform_code)
                return _Pass(
                    connection_id=connection_id,
                    user_id=connection.user_id,
                    platform=platform,
                    lease=lease,
                    events=[(row, _event_of(row, platform)) for row in rows],
                )
            note = "The connection was removed or disconnected"
            outcomes = [Outcome(row.id, WebhookStatus.IGNORED, note) for row in rows]
            await repository.finish(session, outcomes)
            await session.commit()
            _count(outcomes, PlatformCode(rows[0].platform_code))


def _hint(events: Sequence[WebhookEvent], overlap: timedelta) -> ReadHint:
    """The oldest push's change time minus the sync's overlap (None if no push tells one),
    and per order the newest change a push tells of."""
    changed: dict[str, datetime] = {}
    for event in events:
        if event.changed_at is not None:
            for order_id in event.order_ids:
                seen = changed.get(order_id)
                changed[order_id] = (
                    event.changed_at if seen is None else max(seen, event.changed_at)
                )
    since = min(changed.values()) - overlap if changed else None
    return ReadHint(updated_since=since, changed_at=changed)


async def _read(wc: WorkerContext, claim: _Pass, client: MarketplaceClient | None) -> None:
    """The claimed events' orders in one bulk read, no transaction open, the lease renewed
    meanwhile. A failure is kept for the write, which backs the events off or fails them."""
    events = [event for _, event in claim.order_events]
    order_ids = list(dict.fromkeys(i for event in events for i in event.order_ids))
    if client is None:
        claim.read_error = OrderNotReturned("The connection was removed")
        return
    try:
        async with _renewing(wc, claim):
            hint = _hint(events, timedelta(seconds=wc.settings.sync_overlap_seconds))
            claim.read = await client.fetch_orders_by_ids(order_ids, hint)
    except Exception as exc:  # kept for the write: every order event backs off or fails
        if not isinstance(exc, MarketplaceError):
            logger.exception(
                "webhook order read failed", extra={"connection_id": str(claim.connection_id)}
            )
        claim.read_error = exc


@contextlib.asynccontextmanager
async def _renewing(wc: WorkerContext, claim: _Pass) -> AsyncIterator[None]:
    """Keep the claim alive while a slow read (a platform asking us to wait) runs."""
    ids = [row.id for row, _ in claim.events]

    async def renew() -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY_SECONDS)
            until = _lease_from_now()
            async with wc.sessionmaker() as session:
                await repository.renew(session, ids, claim.lease, until)
                await session.commit()
            claim.lease = until

    task = asyncio.create_task(renew())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _write(wc: WorkerContext, claim: _Pass) -> Counter[str]:
    """One short transaction: the orders through the sync's ingest, the other events' effects,
    every event's outcome, and a deferred drain for those that back off."""
    policy = RetryPolicy.from_tuning(wc.settings.clients)
    async with wc.sessionmaker() as session:
        # A lost commit leaves the events claimed: their lease runs out and they are redone.
        await session.execute(text("SET LOCAL synchronous_commit = off"))
        held = await repository.lock_held(session, [row.id for row, _ in claim.events], claim.lease)
        events = [(row, event) for row, event in claim.events if row.id in held]
        outcomes: list[Outcome] = []
        if any(e is not None and e.kind is EventKind.ORDER for _, e in events):
            outcomes += await _write_orders(session, claim, events, policy)
        for row, event in events:
            if event is None or event.kind is not EventKind.ORDER:
                outcomes.append(await _apply_other(session, claim, row, event, policy))
        await repository.finish(session, outcomes)
        retries = [o.due for o in outcomes if o.status == WebhookStatus.RECEIVED and o.due]
        if retries:
            wait = (min(retries) - datetime.now(UTC)).total_seconds()
            queue_drain(session, claim.connection_id, defer_seconds=max(wait, 0.001))
        await session.commit()
    return _count(outcomes, claim.platform)


def _count(outcomes: Sequence[Outcome], platform: PlatformCode) -> Counter[str]:
    counts = Counter(o.status for o in outcomes)
    for status, n in counts.items():
        if status != WebhookStatus.RECEIVED:
            for _ in range(n):
                metrics.record_webhook(platform.value, status)
    return Counter({str(k): v for k, v in counts.items()})


async def _ingest(
    session: AsyncSession, claim: _Pass, orders: list[NormalizedOrder]
) -> tuple[set[str], list[OrderFailure]]:
    """The batch in one upsert; if the database refuses it, order by order, so one order it
    cannot store fails only its own events."""

    async def upsert(batch: list[NormalizedOrder]) -> None:
        await upsert_orders(
            session,
            batch,
            connection_id=claim.connection_id,
            user_id=claim.user_id,
            platform_code=claim.platform.value,
        )
        # A push about an order (Shopee's code 4: tracking number) reads its tracking again.
        await fulfillment_service.orders_pushed(
            session, claim.connection_id, [o.external_order_id for o in batch]
        )

    try:
        async with session.begin_nested():
            await upsert(orders)
        return {o.external_order_id for o in orders}, []
    except DBAPIError as exc:
        if is_database_unavailable(exc):
            raise
    stored: set[str] = set()
    failures: list[OrderFailure] = []
    for order in orders:
        try:
            async with session.begin_nested():
                await upsert([order])
            stored.add(order.external_order_id)
        except DBAPIError as exc:
            if is_database_unavailable(exc):
                raise
            failures.append(OrderFailure(order.external_order_id, "Could not store the order"))
    return stored, failures


def _retry_or_fail(
    row: Claimed, error: Exception, message: str, policy: RetryPolicy, *, retry: bool
) -> Outcome:
    attempt = row.attempts + 1
    if retry and attempt < policy.max_attempts:
        due = datetime.now(UTC) + timedelta(seconds=policy.delay_for(error, attempt))
        return Outcome(row.id, WebhookStatus.RECEIVED, message, due)
    return Outcome(row.id, WebhookStatus.FAILED, message)


async def _write_orders(
    session: AsyncSession,
    claim: _Pass,
    events: Sequence[tuple[Claimed, WebhookEvent | None]],
    policy: RetryPolicy,
) -> list[Outcome]:
    rows = [(row, e) for row, e in events if e is not None and e.kind is EventKind.ORDER]
    error = claim.read_error
    if error is not None:
        if isinstance(error, MarketplaceError):
            new_status = status_for_failure(error)
            if new_status is not None:
                await mark_status(session, claim.connection_id, new_status, error.message)
            message, retry = error.message, policy.should_retry(error, 1)
        else:
            message, retry = f"Internal error ({type(error).__name__})", True
        return [_retry_or_fail(row, error, message, policy, retry=retry) for row, _ in rows]
    stored, write_failures = await _ingest(session, claim, claim.read.orders)
    unreadable = {f.external_order_id: f.message for f in [*claim.read.failures, *write_failures]}
    outcomes = []
    for row, event in rows:
        refused = [unreadable[i] for i in event.order_ids if i in unreadable]
        missing = [i for i in event.order_ids if i not in stored and i not in unreadable]
        if refused:
            outcomes.append(Outcome(row.id, WebhookStatus.FAILED, "; ".join(refused)))
        elif missing:
            message = f"{claim.platform.value} returned no order {', '.join(missing)}"
            outcomes.append(
                _retry_or_fail(row, OrderNotReturned(message), message, policy, retry=True)
            )
        else:
            outcomes.append(Outcome(row.id, WebhookStatus.PROCESSED, None))
    return outcomes


async def _apply_other(
    session: AsyncSession,
    claim: _Pass,
    row: Claimed,
    event: WebhookEvent | None,
    policy: RetryPolicy,
) -> Outcome:
    """An event that names no order: its effect in a savepoint of the write transaction."""
    if event is None:
        return Outcome(row.id, WebhookStatus.IGNORED, "Not an event Omni Sales recognizes")
    try:
        async with session.begin_nested():
            status, note = await _effect(session, claim, row, event)
    except Exception as exc:
        logger.exception("webhook processing failed", extra={"webhook_id": row.id})
        message = f"Internal error ({type(exc).__name__})"
        return _retry_or_fail(row, exc, message, policy, retry=True)
    return Outcome(row.id, status, note)


async def _effect(
    session: AsyncSession, claim: _Pass, row: Claimed, event: WebhookEvent
) -> tuple[WebhookStatus, str | None]:
    connection = await session.get(MarketplaceConnection, claim.connection_id)
    if connection is None:  # removed since the claim
        return WebhookStatus.IGNORED, "The connection was removed"
    if event.kind is EventKind.AUTHORIZATION:
        if event.connection_status is not None:
            status = ConnectionStatus(event.connection_status)
            await mark_status(session, connection.id, status, event.status_reason)
        elif event.status_reason:
            # A warning (expiry soon): the connection still works, the reason says what is due.
            if connection.status == ConnectionStatus.ACTIVE:
                await mark_status(
                    session, connection.id, ConnectionStatus.ACTIVE, event.status_reason
                )
            await alerts.alert_authorization_expiring(
                session,
                connection_id=connection.id,
                platform_code=connection.platform_code,
                message=event.status_reason,
                noticed_at=datetime.now(UTC),
            )
        return WebhookStatus.PROCESSED, None
    if event.kind in (EventKind.PRODUCT, EventKind.STOCK):
        # The listing changed on the platform: the product sync re-reads it.
        await apply_product_push(session, connection.id, ())
        return WebhookStatus.PROCESSED, None
    if event.kind is EventKind.SOCIAL and claim.platform is PlatformCode.FACEBOOK:
        # Live CF comments and Messenger events become orders (app/live), in this transaction.
        outcome = await handle_page_event(session, connection.id, row.event_type, row.payload)
        if outcome == WebhookStatus.PROCESSED:
            return WebhookStatus.PROCESSED, None
        return WebhookStatus.IGNORED, "No open live session or Messenger event to act on"
    return WebhookStatus.IGNORED, _IGNORED_NOTES.get(event.kind, _IGNORED_NOTES[EventKind.OTHER])
