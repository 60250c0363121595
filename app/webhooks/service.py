"""Marketplace pushes: verified on the raw bytes, stored once per connection, processed by
the worker through the same order code path as the sync.

A marketplace waits on the receive path (Shopee 3 s, Lazada 500 ms) and suspends apps that
answer badly, so it does the least that is safe: find the shop's owners, check the signature,
insert-if-new, commit, queue. Everything else happens in the job."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg  # type: ignore[import-untyped]
import orjson
from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from arq.jobs import serialize_job
from arq.worker import Retry
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.alerts import service as alerts
from app.connections.credentials import connection_client
from app.connections.repository import mark_status, status_for_failure
from app.crypto import CredentialCipher
from app.errors import AppError, ConflictError, DatabaseUnavailable, NotFoundError
from app.fulfillment import service as fulfillment_service
from app.live.service import handle_page_event
from app.metrics import service as metrics
from app.models import MarketplaceConnection, MarketplaceWebhook
from app.models.enums import ConnectionStatus
from app.orders.ingest import upsert_orders
from app.orders.service import invalid
from app.platforms.errors import MarketplaceError
from app.platforms.http import PlatformTransport
from app.platforms.shopee.webhooks import confirm_lost_push_messages, get_lost_push_messages
from app.platforms.types import NormalizedOrder, PlatformCode
from app.platforms.webhooks import (
    EventKind,
    PushParser,
    PushRequest,
    SigningKey,
    UnrecognizedPush,
    WebhookEvent,
    detect_platform,
    parser_for,
)
from app.products.service import apply_product_push
from app.webhooks import repository
from app.webhooks.repository import NewEvent, ShopOwner
from app.webhooks.schemas import WebhookEventOut, WebhookStatus
from app.worker_context import WorkerContext

logger = logging.getLogger("app.webhooks")

MAX_BODY_BYTES = 1024 * 1024
ENQUEUE_LINGER_SECONDS = 0.002
PROCESS_JOB = "process_webhook"
# Attempts of one job run (arq's job_try) before an event is `failed`; back-off between them.
MAX_ATTEMPTS = 6
RETRY_BASE_SECONDS = 2.0
RETRY_CAP_SECONDS = 600.0
# The sweeper re-queues events still `received` this long after they were due.
SWEEP_AFTER_SECONDS = 5
SWEEP_BATCH = 500
SWEEP_REQUEUE_GRACE_SECONDS = 60
# Order events of one connection read together in one `get_orders` call (Shopee's detail
# call takes 50 order numbers).
ORDER_BATCH = 50
# A first try this close to its due time runs (clocks of two workers may differ a little).
EARLY_TOLERANCE_SECONDS = 1.0

# Rejected pushes by (platform, reason). The metrics issue exports these; tests read them.
REJECTIONS: Counter[tuple[str, str]] = Counter()


class PushTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"

    def __init__(self) -> None:
        super().__init__(f"Webhook bodies are limited to {MAX_BODY_BYTES} bytes")


class MalformedPush(AppError):
    status_code = 400
    code = "invalid_webhook"


class PushRejected(AppError):
    status_code = 401
    code = "webhook_unauthorized"


class EventNotFailed(ConflictError):
    code = "webhook_not_failed"

    def __init__(self, status: str) -> None:
        super().__init__(f"Only a failed event can be retried; this one is {status}")


def job_id(webhook_id: int) -> str:
    return f"webhook:{webhook_id}"


def reject(platform: str, reason: str, message: str) -> PushRejected:
    REJECTIONS[(platform, reason)] += 1
    metrics.record_webhook(platform, "rejected")
    logger.warning("webhook rejected", extra={"platform": platform, "reason": reason})
    return PushRejected(message)


async def enqueue(redis: ArqRedis | None, webhook_ids: Sequence[int]) -> bool:
    """Queue processing; False (logged) when Redis cannot take it now."""
    if redis is None or not webhook_ids:
        return redis is not None
    try:
        for webhook_id in webhook_ids:
            await redis.enqueue_job(PROCESS_JOB, webhook_id, _job_id=job_id(webhook_id))
    except Exception as exc:  # any Redis failure: the row is committed, the sweeper catches up
        logger.warning("webhook stored but not queued (%s)", type(exc).__name__)
        return False
    return True


async def enqueue_new(redis: ArqRedis | None, webhook_ids: Sequence[int]) -> bool:
    """Queue events that were just inserted, in one pipeline. arq's `enqueue_job` watches and
    checks each job id first (three round trips and most of a push's CPU); an id inserted a
    moment ago cannot be queued already, so plain writes of arq's own job format suffice."""
    if redis is None or not webhook_ids:
        return redis is not None
    now_ms = int(time.time() * 1000)
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for webhook_id in webhook_ids:
                key = job_id(webhook_id)
                job = serialize_job(
                    PROCESS_JOB, (webhook_id,), {}, None, now_ms, serializer=redis.job_serializer
                )
                pipe.psetex(job_key_prefix + key, redis.expires_extra_ms, job)
                pipe.zadd(redis.default_queue_name, {key: now_ms})
            await pipe.execute()
    except Exception as exc:  # any Redis failure: the rows are committed, the sweeper catches up
        logger.warning("webhooks stored but not queued; the sweeper will (%s)", type(exc).__name__)
        return False
    return True


class EnqueueBatcher:
    """Queues webhook ids for every request of the process through one flusher: the ids that
    arrive while a pipeline is on its way go together in the next one. One pipeline per
    request made each request wait its turn for a Redis connection under the pool's lock, and
    under load those waiting requests (with everything they held) piled up by the thousand."""

    def __init__(self, redis: ArqRedis | None) -> None:
        self.redis = redis
        self._ids: list[int] = []
        self._next: asyncio.Future[None] | None = None  # done once `_ids` are sent
        self._flusher: asyncio.Task[None] | None = None

    async def enqueue(self, webhook_ids: Sequence[int]) -> None:
        """Returns once the ids were sent (or Redis failed and the sweeper will send them)."""
        if not webhook_ids:
            return
        loop = asyncio.get_running_loop()
        self._ids.extend(webhook_ids)
        if self._next is None or self._next.get_loop() is not loop:
            self._next = loop.create_future()
        pending = self._next
        if self._flusher is None or self._flusher.done() or self._flusher.get_loop() is not loop:
            self._flusher = loop.create_task(self._flush())
        # Shielded: a cancelled request must not cancel the flush other requests wait on.
        await asyncio.shield(pending)

    async def _flush(self) -> None:
        while self._next is not None:
            # A moment for more requests to join: under load a pipeline then carries several
            # requests' ids, and nobody waits on it but the requests that already have answers.
            await asyncio.sleep(ENQUEUE_LINGER_SECONDS)
            ids, done = self._ids, self._next
            self._ids, self._next = [], None
            try:
                await enqueue_new(self.redis, ids)
            finally:
                if not done.done():
                    done.set_result(None)

    async def drain(self) -> None:
        """Wait for the flush in progress (shutdown, tests)."""
        flusher = self._flusher
        if flusher is not None and not flusher.done():
            await asyncio.shield(flusher)


class _SecretCache:
    """Decrypted secrets by ciphertext. A new secret is a new ciphertext, so an entry is never
    stale; it saves two Fernet decryptions on every push."""

    def __init__(self, cipher: CredentialCipher, size: int = 4096) -> None:
        self.cipher = cipher
        self.size = size
        self._plain: OrderedDict[str, str] = OrderedDict()

    def decrypt(self, token: str) -> str:
        plain = self._plain.get(token)
        if plain is None:
            plain = self._plain[token] = self.cipher.decrypt(token)
            if len(self._plain) > self.size:
                self._plain.popitem(last=False)
        return plain

    def key(self, owner: ShopOwner) -> SigningKey:
        return SigningKey(
            self.decrypt(owner.api_key_encrypted), self.decrypt(owner.api_secret_encrypted)
        )


def new_events(events: Sequence[WebhookEvent], owners: Sequence[ShopOwner]) -> list[NewEvent]:
    """One row per event per connection that owns the event's shop."""
    return [
        NewEvent(
            platform_code=event.platform.value,
            user_id=owner.user_id,
            connection_id=owner.connection_id,
            event_type=event.event_type,
            dedupe_key=event.dedupe_key,
            payload=event.payload,
        )
        for event in events
        for owner in owners
        if owner.shop_id == event.shop_id
    ]


@dataclass
class Receiver:
    engine: AsyncEngine
    cipher: CredentialCipher
    redis: ArqRedis | None
    public_base_url: str | None
    _secrets: _SecretCache = field(init=False)
    batcher: EnqueueBatcher = field(init=False)

    def __post_init__(self) -> None:
        self._secrets = _SecretCache(self.cipher)
        self.batcher = EnqueueBatcher(self.redis)

    async def receive(
        self,
        *,
        platform: PlatformCode | None,
        path: str,
        request_base_url: str | None,
        headers: Mapping[str, str],
        body: bytes,
    ) -> list[int]:
        """Verify and store one push; returns the ids of the events that were new (the caller
        queues them once the answer is on its way). `request_base_url` counts only without
        PUBLIC_BASE_URL."""
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise MalformedPush("The webhook body is not valid JSON") from None
        try:
            platform = platform or detect_platform(headers, document)
        except UnrecognizedPush as exc:
            raise MalformedPush(str(exc)) from None
        parser = parser_for(platform)
        shop_ids = parser.shop_ids(document)
        if not shop_ids:
            raise reject(platform.value, "no_shop", "The webhook names no shop")
        base = (self.public_base_url or request_base_url or "").rstrip("/")
        push = PushRequest(body=body, document=document, headers=headers, callback_url=base + path)
        # On the pooled asyncpg connection itself, outside any transaction: the lookup and the
        # insert-if-new are one statement each and the insert commits itself (no BEGIN/COMMIT
        # round trips on the path a marketplace waits on). SQLAlchemy never begins one here.
        async with self.engine.connect() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            try:
                owners = await repository.shop_owners(driver, platform.value, shop_ids)
                if not owners:
                    raise reject(platform.value, "unknown_shop", "No connection owns this shop")
                verified = [o for o in owners if parser.verify(push, self._secrets.key(o))]
                if not verified:
                    raise reject(
                        platform.value, "bad_signature", "The webhook signature is invalid"
                    )
                events = new_events(parser.parse(document, body), verified)
                new_ids = await repository.insert_new(driver, events)
                for _ in new_ids:
                    metrics.record_webhook(platform.value, "received")
                return new_ids
            except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
                await connection.invalidate(exc)
                raise DatabaseUnavailable() from exc


# --- processing ---------------------------------------------------------------------------


class OrderNotReadable(Exception):
    """The platform did not return the pushed order (yet): worth another try."""


def retry_delay(job_try: int) -> float:
    return float(min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** (job_try - 1)))


def _event_of(row: MarketplaceWebhook) -> WebhookEvent | None:
    parser: PushParser = parser_for(PlatformCode(row.platform_code))
    events = parser.parse(row.payload, b"")
    return events[0] if events else None


_IGNORED_NOTES = {
    EventKind.SOCIAL: "Stored for Facebook social orders; not processed yet",
    EventKind.OTHER: "Not an event Omni Sales acts on",
}


async def _read_orders(
    wc: WorkerContext, connection: MarketplaceConnection, order_ids: Sequence[str]
) -> list[NormalizedOrder]:
    client = connection_client(wc, connection)
    try:
        return await client.get_orders(list(order_ids))
    finally:
        await client.aclose()


async def _upsert(
    session: AsyncSession, connection: MarketplaceConnection, orders: Sequence[NormalizedOrder]
) -> None:
    # The sync's own writer: an older payload never overwrites a newer stored one.
    await upsert_orders(
        session,
        orders,
        connection_id=connection.id,
        user_id=connection.user_id,
        platform_code=connection.platform_code,
    )
    # A push about an order (Shopee's code 4: tracking number) reads its tracking again.
    await fulfillment_service.orders_pushed(
        session, connection.id, [o.external_order_id for o in orders]
    )


async def _fetch_and_upsert(
    wc: WorkerContext,
    session: AsyncSession,
    connection: MarketplaceConnection,
    order_ids: Sequence[str],
) -> None:
    orders = await _read_orders(wc, connection, order_ids)
    if not orders:
        raise _not_returned(connection, order_ids)
    await _upsert(session, connection, orders)


def _not_returned(connection: MarketplaceConnection, order_ids: Sequence[str]) -> OrderNotReadable:
    return OrderNotReadable(f"{connection.platform_code} returned no order {', '.join(order_ids)}")


async def _apply(
    wc: WorkerContext, session: AsyncSession, row: MarketplaceWebhook
) -> tuple[WebhookStatus, str | None]:
    connection = await repository.connection(session, row.connection_id)
    if connection is None or connection.status == ConnectionStatus.DISCONNECTED:
        return WebhookStatus.IGNORED, "The connection was removed or disconnected"
    event = _event_of(row)
    if event is None:
        return WebhookStatus.IGNORED, "Not an event Omni Sales recognizes"
    if event.kind is EventKind.ORDER:
        await _fetch_and_upsert(wc, session, connection, event.order_ids)
        return WebhookStatus.PROCESSED, None
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
                noticed_at=row.received_at,
            )
        return WebhookStatus.PROCESSED, None
    if event.kind in (EventKind.PRODUCT, EventKind.STOCK):
        # The listing changed on the platform: the product sync re-reads it.
        await apply_product_push(session, connection.id, ())
        return WebhookStatus.PROCESSED, None
    if event.kind is EventKind.SOCIAL and connection.platform_code == PlatformCode.FACEBOOK.value:
        # Live CF comments and Messenger carts become orders (app/live), in this transaction.
        outcome = await handle_page_event(session, connection.id, row.event_type, row.payload)
        if outcome == WebhookStatus.PROCESSED:
            return WebhookStatus.PROCESSED, None
        return WebhookStatus.IGNORED, "No open live session or Messenger event to act on"
    return WebhookStatus.IGNORED, _IGNORED_NOTES[event.kind]


def _back_off_left(row: MarketplaceWebhook, now: datetime) -> float:
    """Seconds until a failed event's next try is due (`next_attempt_at` holds the due time
    plus the sweeper's grace)."""
    due = row.next_attempt_at - timedelta(seconds=SWEEP_REQUEUE_GRACE_SECONDS)
    return (due - now).total_seconds()


async def process(wc: WorkerContext, webhook_id: int, job_try: int = 1) -> str:
    """Process one stored event, and with an order event the other order events of its
    connection that wait (up to ORDER_BATCH, read in one marketplace call). Safe to run twice:
    only `received` rows are taken, under their row locks, and the order upsert itself is
    idempotent; an event taken by another job's batch is skipped here."""
    async with wc.sessionmaker() as session:
        row = await repository.lock_received(session, webhook_id)
        if row is None:
            return "skipped"  # done already, or another worker holds it
        now = datetime.now(UTC)
        wait = _back_off_left(row, now)
        if job_try == 1 and wait > EARLY_TOLERANCE_SECONDS:
            # Queued before another job's batch failed it: honour that batch's back-off. (A
            # later try of this job was deferred by this job's own Retry and is on time.)
            raise Retry(defer=wait)
        connection = await repository.connection(session, row.connection_id)
        event = _event_of(row)
        if (
            connection is not None
            and connection.status != ConnectionStatus.DISCONNECTED
            and event is not None
            and event.kind is EventKind.ORDER
        ):
            batch = [row]
            types = parser_for(PlatformCode(connection.platform_code)).order_event_types
            # Not one backing off after a failed try (next_attempt_at holds due + grace); the
            # tolerance takes along those that failed in the same batch as this one.
            due_by = now + timedelta(seconds=SWEEP_REQUEUE_GRACE_SECONDS + EARLY_TOLERANCE_SECONDS)
            batch += await repository.lock_waiting_batch(
                session, row, types, ORDER_BATCH - 1, next_attempt_by=due_by
            )
            outcomes = await _process_orders(wc, session, connection, batch, job_try)
        else:
            outcomes = {row.id: await _process_one(wc, session, row, job_try)}
        await session.commit()
    await _queue_retries(wc, outcomes, trigger=webhook_id)
    outcome = outcomes[webhook_id]
    if isinstance(outcome, float):
        raise Retry(defer=outcome)
    return outcome.value


# An event's outcome: its final status, or the seconds of back-off before its next try.
Outcome = WebhookStatus | float


def _finish(row: MarketplaceWebhook, status: WebhookStatus, note: str | None) -> Outcome:
    row.attempts += 1
    row.status = status
    row.error_message = note
    row.processed_at = datetime.now(UTC)
    metrics.record_webhook(row.platform_code, status.value)
    return status


def _failure_message(exc: Exception, webhook_id: int) -> str:
    if isinstance(exc, MarketplaceError):
        return exc.message
    if isinstance(exc, OrderNotReadable):
        return str(exc)
    logger.exception("webhook processing failed", extra={"webhook_id": webhook_id})
    return f"Internal error ({type(exc).__name__})"


def _fail(row: MarketplaceWebhook, exc: Exception, try_number: int, message: str) -> Outcome:
    """Count a failed try: back off for another one, or `failed` after the last."""
    row.attempts += 1
    row.error_message = message[:1000]
    retryable = not isinstance(exc, MarketplaceError) or exc.retryable
    if retryable and try_number < MAX_ATTEMPTS:
        delay = retry_delay(try_number)
        row.next_attempt_at = datetime.now(UTC) + timedelta(
            seconds=delay + SWEEP_REQUEUE_GRACE_SECONDS
        )
        return delay
    row.status = WebhookStatus.FAILED
    metrics.record_webhook(row.platform_code, WebhookStatus.FAILED.value)
    return WebhookStatus.FAILED


def _try_number(row: MarketplaceWebhook, trigger_id: int, job_try: int) -> int:
    # The job's own event counts arq's tries; an event taken along counts its stored attempts.
    return max(job_try, row.attempts + 1) if row.id == trigger_id else row.attempts + 1


async def _mark_connection(
    session: AsyncSession, connection_id: uuid.UUID | None, exc: Exception
) -> None:
    if isinstance(exc, MarketplaceError) and connection_id is not None:
        new_status = status_for_failure(exc)
        if new_status is not None:
            await mark_status(session, connection_id, new_status, exc.message)


async def _process_one(
    wc: WorkerContext, session: AsyncSession, row: MarketplaceWebhook, job_try: int
) -> Outcome:
    try:
        async with session.begin_nested():
            status, note = await _apply(wc, session, row)
    except Exception as exc:
        await _mark_connection(session, row.connection_id, exc)
        return _fail(row, exc, _try_number(row, row.id, job_try), _failure_message(exc, row.id))
    return _finish(row, status, note)


async def _process_orders(
    wc: WorkerContext,
    session: AsyncSession,
    connection: MarketplaceConnection,
    batch: Sequence[MarketplaceWebhook],
    job_try: int,
) -> dict[int, Outcome]:
    """One `get_orders` call and one upsert for the batch; then each event is processed, or
    failed and retried on its own when its order is not among those the platform returned."""
    trigger_id = batch[0].id
    outcomes: dict[int, Outcome] = {}
    wanted: dict[int, tuple[str, ...]] = {}
    for row in batch:
        event = _event_of(row)
        if event is None or event.kind is not EventKind.ORDER:
            outcomes[row.id] = await _process_one(wc, session, row, job_try)
        else:
            wanted[row.id] = event.order_ids
    rows = [row for row in batch if row.id in wanted]
    order_ids = list(dict.fromkeys(i for ids in wanted.values() for i in ids))
    try:
        async with session.begin_nested():
            orders = await _read_orders(wc, connection, order_ids)
            await _upsert(session, connection, orders)
    except Exception as exc:
        await _mark_connection(session, connection.id, exc)
        message = _failure_message(exc, trigger_id)
        for row in rows:
            outcomes[row.id] = _fail(row, exc, _try_number(row, trigger_id, job_try), message)
        return outcomes
    returned = {order.external_order_id for order in orders}
    for row in rows:
        missing = [i for i in wanted[row.id] if i not in returned]
        if missing:
            unread = _not_returned(connection, missing)
            try_number = _try_number(row, trigger_id, job_try)
            outcomes[row.id] = _fail(row, unread, try_number, str(unread))
        else:
            outcomes[row.id] = _finish(row, WebhookStatus.PROCESSED, None)
    return outcomes


async def _queue_retries(wc: WorkerContext, outcomes: dict[int, Outcome], trigger: int) -> None:
    """Events taken along that failed get their own deferred job (the job's own event is
    retried by raising Retry). A job of theirs still queued keeps its id, so arq ignores the
    repeat and that job defers itself to the back-off; the sweeper covers a lost one."""
    if wc.redis is None:
        return
    for webhook_id, outcome in outcomes.items():
        if webhook_id == trigger or not isinstance(outcome, float):
            continue
        try:
            await wc.redis.enqueue_job(
                PROCESS_JOB, webhook_id, _job_id=job_id(webhook_id), _defer_by=outcome
            )
        except Exception as exc:  # the row says when it is due; the sweeper queues it then
            logger.warning("webhook retry not queued (%s)", type(exc).__name__)
            return


async def sweep(wc: WorkerContext) -> int:
    """Queue events left `received` past their time (stored while Redis was down, or whose
    job was lost). A job still queued keeps its id, so arq ignores the repeat."""
    now = datetime.now(UTC)
    async with wc.sessionmaker() as session:
        due = await repository.due_for_sweep(
            session, now - timedelta(seconds=SWEEP_AFTER_SECONDS), SWEEP_BATCH
        )
        if not due:
            return 0
        await repository.push_back(
            session, due, now + timedelta(seconds=SWEEP_REQUEUE_GRACE_SECONDS)
        )
        await session.commit()
    if not await enqueue(wc.redis, due):
        return 0
    return len(due)


LOST_PUSH_MAX_PAGES = 20


async def collect_shopee_lost_pushes(wc: WorkerContext) -> int:
    """Fetch the pushes Shopee could not deliver, store them like pushes, then confirm them.
    Confirming only after the commit means a crash re-reads a page instead of losing it."""
    async with wc.sessionmaker() as session:
        owners = await repository.shop_owners_of_platform(session, PlatformCode.SHOPEE.value)
    secrets = _SecretCache(wc.cipher)
    partners: dict[SigningKey, list[ShopOwner]] = {}
    for owner in owners:
        partners.setdefault(secrets.key(owner), []).append(owner)
    parser = parser_for(PlatformCode.SHOPEE)
    stored = 0
    for key, partner_owners in partners.items():
        try:
            stored += await _collect_partner(wc, parser, key, partner_owners)
        except (MarketplaceError, ValueError) as exc:
            logger.warning("lost pushes not collected for one Shopee partner: %s", exc)
    return stored


async def _collect_partner(
    wc: WorkerContext, parser: PushParser, key: SigningKey, owners: Sequence[ShopOwner]
) -> int:
    partner_id = int(key.api_key)
    transport = PlatformTransport(
        platform=PlatformCode.SHOPEE.value, tuning=wc.settings.clients, http_client=wc.http
    )
    base_url = wc.settings.shopee_base_url
    stored = 0
    for _ in range(LOST_PUSH_MAX_PAGES):
        page = await get_lost_push_messages(transport, base_url, partner_id, key.api_secret)
        events = [e for d in page.documents for e in parser.parse(d, b"")]
        if events:
            async with wc.sessionmaker() as session:
                new_ids = await repository.insert_new_in(session, new_events(events, owners))
                await session.commit()
            stored += len(new_ids)
            await enqueue(wc.redis, new_ids)
        if page.last_message_id is None or not page.documents:
            break
        await confirm_lost_push_messages(
            transport, base_url, partner_id, key.api_secret, page.last_message_id
        )
        if not page.has_next_page:
            break
    return stored


# --- the inbox API --------------------------------------------------------------------------


def encode_cursor(webhook_id: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([1, webhook_id])).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        version, webhook_id = orjson.loads(base64.urlsafe_b64decode(padded))
        if version != 1 or type(webhook_id) is not int or not 0 < webhook_id < 2**63:
            raise ValueError("bad cursor")
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise invalid("cursor", "Malformed cursor; pass nextCursor from a previous page") from exc
    return webhook_id


async def list_events(
    session: AsyncSession,
    user_id: str,
    *,
    connection_id: uuid.UUID | None,
    status: WebhookStatus | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[WebhookEventOut], str | None]:
    rows = await repository.list_events(
        session,
        user_id,
        connection_id=connection_id,
        status=status.value if status else None,
        before_id=decode_cursor(cursor) if cursor else None,
        limit=limit + 1,
    )
    page = [WebhookEventOut.model_validate(row) for row in rows[:limit]]
    next_cursor = encode_cursor(page[-1].id) if len(rows) > limit else None
    return page, next_cursor


async def retry_event(session: AsyncSession, user_id: str, webhook_id: int) -> WebhookEventOut:
    """Put a failed event back in the queue (the caller's unit of work queues the job)."""
    row = await repository.owned_event(session, user_id, webhook_id, lock=True)
    if row is None:
        raise NotFoundError("Webhook event not found")
    if row.status != WebhookStatus.FAILED:
        raise EventNotFailed(row.status)
    row.status = WebhookStatus.RECEIVED
    row.error_message = None
    row.processed_at = None
    row.next_attempt_at = datetime.now(UTC)
    await session.flush()
    return WebhookEventOut.model_validate(row)
