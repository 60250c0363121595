"""Marketplace pushes: verified on the raw bytes, stored once per connection, and drained by one
job per shop through the same order code path as the sync (`app/webhooks/drain.py`).

A marketplace waits on the receive path (Shopee 3 s, Lazada 500 ms) and suspends apps that
answer badly, so it does the least that is safe: find the shop's owners, check the signature
and the push's age, insert-if-new and ask for the shop's drain job in one transaction, commit.
Everything else happens in the job."""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import re
import uuid
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.crypto import CredentialCipher
from app.errors import (
    AppError,
    ConflictError,
    DatabaseUnavailable,
    NotFoundError,
    is_database_unavailable,
)
from app.jobs.outbox import enqueue
from app.metrics import service as metrics
from app.orders.service import invalid
from app.platforms.errors import MarketplaceError
from app.platforms.http import PlatformTransport
from app.platforms.shopee.webhooks import confirm_lost_push_messages, get_lost_push_messages
from app.platforms.types import PlatformCode
from app.platforms.webhooks import (
    PushParser,
    PushRequest,
    SigningKey,
    UnrecognizedPush,
    WebhookEvent,
    detect_platform,
    parser_for,
)
from app.webhooks import repository
from app.webhooks.repository import NewEvent, ShopOwner
from app.webhooks.schemas import WebhookEventOut, WebhookStatus
from app.worker_context import WorkerContext

logger = logging.getLogger("app.webhooks")

MAX_BODY_BYTES = 1024 * 1024
DRAIN_JOB = "drain_webhooks"
# The sweeper queues a drain for events still `received` this long after they were due.
SWEEP_AFTER_SECONDS = 5
SWEEP_BATCH = 500

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


def drain_key(connection_id: uuid.UUID) -> str:
    """One waiting drain job per shop: asking again while it waits is a no-op."""
    return f"webhooks:{connection_id}"


def queue_drain(session: AsyncSession, connection_id: uuid.UUID, defer_seconds: float = 0) -> None:
    """Ask, in `session`'s transaction, for a pass over everything the connection has waiting.
    A deferred one (a retry's back-off) has its own key, so it never holds back the prompt
    drain that new pushes ask for."""
    key = drain_key(connection_id) + (":retry" if defer_seconds > 0 else "")
    enqueue(session, DRAIN_JOB, str(connection_id), dedupe_key=key, defer_seconds=defer_seconds)


def reject(platform: str, reason: str, message: str) -> PushRejected:
    REJECTIONS[(platform, reason)] += 1
    metrics.record_webhook(platform, "rejected")
    logger.warning("webhook rejected", extra={"platform": platform, "reason": reason})
    return PushRejected(message)


# --- what PostgreSQL cannot hold --------------------------------------------------------------

# JSONB and text refuse U+0000, which JSON allows (`\u0000`). A payload holding one is stored
# with every backslash doubled and every NUL written `\u0000` (six characters), and marked, so
# `stored_document` gives back exactly what the marketplace sent.
NUL_ESCAPED = "_omniNulEscaped"
_ESCAPE = re.compile(r"[\\\x00]")
_UNESCAPE = re.compile(r"\\(\\|u0000)")


def _map_strings(value: Any, change: Any) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, list):
        return [_map_strings(item, change) for item in value]
    if isinstance(value, dict):
        return {change(k): _map_strings(v, change) for k, v in value.items()}
    return value


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    if isinstance(value, dict):
        return any("\x00" in k or _holds_nul(v) for k, v in value.items())
    return False


def _escape(text: str) -> str:
    return _ESCAPE.sub(lambda m: "\\\\" if m.group() == "\\" else "\\u0000", text)


def _unescape(text: str) -> str:
    return _UNESCAPE.sub(lambda m: "\\" if m.group(1) == "\\" else "\x00", text)


def storable_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as PostgreSQL can store it (unchanged unless it holds a NUL)."""
    if not _holds_nul(payload):
        return payload
    escaped: dict[str, Any] = _map_strings(payload, _escape)
    return {**escaped, NUL_ESCAPED: True}


def stored_document(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as the marketplace sent it (undoes `storable_payload`)."""
    if payload.get(NUL_ESCAPED) is not True:
        return payload
    document = {k: v for k, v in payload.items() if k != NUL_ESCAPED}
    restored: dict[str, Any] = _map_strings(document, _unescape)
    return restored


def storable_text(text: str) -> str:
    return text.replace("\x00", "\\u0000")


# --- receiving ----------------------------------------------------------------------------


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
            event_type=storable_text(event.event_type),
            dedupe_key=storable_text(event.dedupe_key),
            payload=storable_payload(event.payload),
        )
        for event in events
        for owner in owners
        if owner.shop_id == event.shop_id
    ]


async def store_events(session: AsyncSession, events: Sequence[NewEvent]) -> list[int]:
    """Insert the new events and ask for each of their shops' drain, in `session`'s
    transaction (the caller commits); returns the new ids."""
    inserted = await repository.insert_new(session, events)
    for connection_id in dict.fromkeys(connection for _, connection in inserted):
        queue_drain(session, connection_id)
    return [webhook_id for webhook_id, _ in inserted]


@dataclass
class Receiver:
    sessionmaker: async_sessionmaker[AsyncSession]
    cipher: CredentialCipher
    public_base_url: str | None
    max_age: timedelta = timedelta(hours=72)
    # Platforms' own push settings, handed to their parsers (TikTok's signature prefix).
    push_options: Mapping[str, str] = field(default_factory=dict)
    _secrets: _SecretCache = field(init=False)

    def __post_init__(self) -> None:
        self._secrets = _SecretCache(self.cipher)

    async def receive(
        self,
        *,
        platform: PlatformCode | None,
        path: str,
        request_base_url: str | None,
        headers: Mapping[str, str],
        body: bytes,
    ) -> list[int]:
        """Verify and store one push, and ask for its shops' drain; returns the ids of the
        events that were new. `request_base_url` counts only without PUBLIC_BASE_URL."""
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
        if any("\x00" in shop_id for shop_id in shop_ids):
            # No shop id can hold one (PostgreSQL text cannot): malformed, not unknown.
            raise MalformedPush("The webhook's shop id holds a NUL character (\\u0000)")
        if not shop_ids:
            raise reject(platform.value, "no_shop", "The webhook names no shop")
        base = (self.public_base_url or request_base_url or "").rstrip("/")
        push = PushRequest(
            body=body,
            document=document,
            headers=headers,
            callback_url=base + path,
            extra=dict(self.push_options),
        )
        async with self.sessionmaker() as session:
            try:
                # The lookup on the pooled asyncpg connection itself: it runs for every push,
                # and SQLAlchemy's statement and row layers would cost more CPU than it does.
                raw = await (await session.connection()).get_raw_connection()
                owners = await repository.shop_owners(
                    raw.driver_connection, platform.value, shop_ids
                )
                if not owners:
                    raise reject(platform.value, "unknown_shop", "No connection owns this shop")
                verified = [o for o in owners if parser.verify(push, self._secrets.key(o))]
                if not verified:
                    raise reject(
                        platform.value, "bad_signature", "The webhook signature is invalid"
                    )
                self._check_age(platform, parser, document)
                new_ids = await store_events(
                    session, new_events(parser.parse(document, body), verified)
                )
                await session.commit()
            except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
                # Raised by the raw lookup, not wrapped by SQLAlchemy: drop the connection.
                with contextlib.suppress(Exception):
                    await (await session.connection()).invalidate(exc)
                raise DatabaseUnavailable() from exc
            except DBAPIError as exc:
                if is_database_unavailable(exc):
                    raise DatabaseUnavailable() from exc
                raise
        for _ in new_ids:
            metrics.record_webhook(platform.value, "received")
        return new_ids

    def _check_age(self, platform: PlatformCode, parser: PushParser, document: Any) -> None:
        """A replayed push is signed as well as a fresh one: only its age tells it apart."""
        sent_at = parser.sent_at(document)
        if sent_at is not None and sent_at < datetime.now(UTC) - self.max_age:
            hours = self.max_age.total_seconds() / 3600
            raise reject(
                platform.value,
                "too_old",
                f"The webhook was sent more than {hours:g} hours ago (WEBHOOK_MAX_AGE_HOURS)",
            )


# --- the sweep and Shopee's lost pushes -----------------------------------------------------


async def sweep(wc: WorkerContext) -> int:
    """Queue a drain for every connection with events left `received` past their time (stored
    while the queue was down, past a back-off, or claimed by a worker that died: its lease ran
    out); returns how many connections. A drain already waiting absorbs the request."""
    now = datetime.now(UTC)
    async with wc.sessionmaker() as session:
        await repository.ignore_orphans(session, "The connection was removed")
        due = await repository.due_connections(
            session, now - timedelta(seconds=SWEEP_AFTER_SECONDS), SWEEP_BATCH
        )
        for connection_id in due:
            queue_drain(session, connection_id)
        await session.commit()
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
                stored += len(await store_events(session, new_events(events, owners)))
                await session.commit()
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
    """Put a failed event back for its shop's drain, asked for in the same transaction."""
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
    if row.connection_id is not None:
        queue_drain(session, row.connection_id)
    return WebhookEventOut.model_validate(row)
