"""Product reviews: a sync job per connection (the platforms' review calls, docs/reviews.md),
the list, and the seller's reply.

The reply is sent while the request waits, not as a job: the seller needs the platform's
answer (accepted, or refused in its own words: already replied, too long, reply period over)
to act on it, and a reply is one call. The review row is claimed (`reply_claimed_at`) and
committed before the call, so no transaction is open during it and a second request for the
same review meanwhile is a 409; the outcome is written after the call.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.connections.credentials import DatabaseTokenStore, connection_client, decrypt_credentials
from app.connections.hosts import ensure_callable
from app.connections.service import get_connection
from app.crypto import CredentialCipher
from app.errors import (
    ConflictError,
    ConnectionMisconfigured,
    MarketplaceUnavailable,
    NotFoundError,
    ReauthRequired,
)
from app.jobs.outbox import enqueue
from app.models import MarketplaceConnection, MarketplaceReview
from app.models.enums import ConnectionStatus
from app.orders.service import TEXT_MASK, invalid
from app.platforms.base import ReviewRef, ReviewReplyRefused
from app.platforms.errors import AuthError, HostNotConfigured, MarketplaceError
from app.platforms.registry import CONNECT_CHECK_TUNING, PlatformGateway, build_client
from app.platforms.types import PlatformCode
from app.reviews import repository
from app.reviews.repository import ReviewFilter
from app.reviews.schemas import ReviewOut, ReviewPage, ReviewPagination, ReviewReplyOut
from app.uow import UnitOfWork
from app.worker_context import WorkerContext

logger = logging.getLogger("app.reviews")

SYNC_REVIEWS_JOB = "sync_reviews"
REVIEW_PLATFORMS = frozenset({PlatformCode.SHOPEE.value, PlatformCode.LAZADA.value})
# A claim older than this belongs to a request that died mid-call: the reply may be retried.
REPLY_CLAIM_SECONDS = 120
# The platforms' codes for "this review has a reply already" (Shopee, Lazada).
_ALREADY_REPLIED = frozenset({"product.duplicate_request", "REPLY_ALREADY"})
_NOT_SYNCED = (
    ConnectionStatus.DISCONNECTED,
    ConnectionStatus.REAUTH_REQUIRED,
    ConnectionStatus.MISCONFIGURED,
)


class ReviewsNotAvailable(ConflictError):
    code = "reviews_not_supported"


class ReplyNotAllowed(ConflictError):
    code = "reply_not_allowed"


class ReplyExists(ConflictError):
    code = "reply_exists"


class ReplyInProgress(ConflictError):
    code = "reply_in_progress"


# --- sync ------------------------------------------------------------------------------------


def sync_job_key(connection_id: uuid.UUID | str) -> str:
    return f"{SYNC_REVIEWS_JOB}:{connection_id}"


def queue_review_sync(session: AsyncSession, connection: MarketplaceConnection) -> None:
    """One queued sync per connection: asking again while it waits is a no-op."""
    enqueue(session, SYNC_REVIEWS_JOB, str(connection.id), dedupe_key=sync_job_key(connection.id))


async def request_review_sync(
    session: AsyncSession, user_id: str, connection_id: uuid.UUID
) -> MarketplaceConnection:
    connection = await get_connection(session, user_id, connection_id)
    if connection.platform_code not in REVIEW_PLATFORMS:
        raise ReviewsNotAvailable(
            f"{connection.platform_code} has no product review API (see docs/reviews.md)"
        )
    if connection.status in _NOT_SYNCED or not connection.is_active:
        raise ConflictError(
            f"This connection is {connection.status}; reviews are synced for live connections",
            code="connection_not_active",
        )
    queue_review_sync(session, connection)
    return connection


@dataclass(slots=True)
class ReviewSyncCounts:
    fetched: int = 0
    created: int = 0
    updated: int = 0


async def run_review_sync(wc: WorkerContext, connection_id: uuid.UUID) -> str:
    """Read the reviews of the connection's stored products and upsert them, a page per short
    transaction; no transaction is open during a platform call. Safe to run twice."""
    async with wc.sessionmaker() as session:
        connection = await session.get(MarketplaceConnection, connection_id)
        if connection is None:
            return "no connection"
        if connection.platform_code not in REVIEW_PLATFORMS:
            return "not supported"
        if connection.status in _NOT_SYNCED or not connection.is_active:
            return f"skipped: {connection.status}"
        session.expunge(connection)
        books = await repository.catalogue(session, connection_id)
        newest = await repository.newest_review_at(session, connection_id)
    now = datetime.now(UTC)
    settings = wc.settings
    since = (
        newest - timedelta(days=settings.review_resync_days)
        if newest is not None
        else now - timedelta(days=settings.review_backfill_days)
    )
    counts = ReviewSyncCounts()
    client = None
    try:
        client = connection_client(wc, connection)
        async for page in client.iter_reviews(sorted(books.names), since):
            async with wc.sessionmaker() as session:
                created, updated = await repository.upsert_reviews(session, connection, page, books)
                await session.commit()
            counts.fetched += len(page)
            counts.created += created
            counts.updated += updated
    except MarketplaceError as exc:
        # The daily cron tries again; the pages stored so far stay (upserts).
        logger.warning(
            "review sync stopped",
            extra={"connection_id": str(connection_id), "error": str(exc)},
        )
        return f"failed after {counts.fetched} reviews: {exc}"
    finally:
        if client is not None:
            await client.aclose()
    return f"{counts.fetched} reviews ({counts.created} new, {counts.updated} refreshed)"


# --- list ------------------------------------------------------------------------------------


def mask_buyer_name(name: str | None) -> str | None:
    """`somchai.j` -> `s****j`: enough to tell buyers apart, not to find them (PDPA), with a
    fixed-width mask that tells nothing about the hidden length."""
    if not name:
        return None
    return f"{name[0]}{TEXT_MASK}{name[-1]}" if len(name) > 2 else TEXT_MASK


def encode_cursor(created: datetime, review_id: int) -> str:
    raw = json.dumps([1, created.isoformat(), review_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        version, created, review_id = json.loads(
            base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        )
        if version != 1 or type(review_id) is not int or not 0 < review_id < 2**63:
            raise ValueError("bad cursor")
        moment = datetime.fromisoformat(created)
        if moment.tzinfo is None:
            raise ValueError("naive time")
        return moment, review_id
    except (ValueError, TypeError) as exc:
        raise invalid("cursor", "Malformed cursor; pass nextCursor from a previous page") from exc


def review_out(review: MarketplaceReview, sku: str | None) -> ReviewOut:
    return ReviewOut(
        id=review.id,
        connection_id=review.connection_id,
        platform_code=review.platform_code,
        external_review_id=review.external_review_id,
        external_product_id=review.external_product_id,
        rating=review.rating,
        text=review.text,
        buyer_name=mask_buyer_name(review.buyer_name),
        product_name=review.product_name,
        sku=sku,
        created_at=review.review_created_at,
        can_reply=review.can_reply,
        reply=(
            ReviewReplyOut(text=review.reply_text, at=review.reply_at)
            if review.reply_text is not None
            else None
        ),
    )


async def list_reviews(
    session: AsyncSession, where: ReviewFilter, *, limit: int, cursor: str | None
) -> ReviewPage:
    after = decode_cursor(cursor) if cursor else None
    rows = await repository.list_reviews(session, where, limit=limit + 1, after=after)
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last: MarketplaceReview = page[-1][0]
        next_cursor = encode_cursor(last.review_created_at, last.id)
    return ReviewPage(
        data=[review_out(row[0], row[1]) for row in page],
        pagination=ReviewPagination(limit=limit, next_cursor=next_cursor),
    )


# --- reply -----------------------------------------------------------------------------------


@dataclass(slots=True)
class ReplyDeps:
    settings: Settings
    cipher: CredentialCipher
    sessionmaker: async_sessionmaker[AsyncSession]
    gateway: PlatformGateway


def _reply_text(text: str, max_chars: int) -> str:
    cleaned = text.strip()
    if not cleaned:
        raise invalid("text", "The reply must not be empty")
    if len(cleaned) > max_chars:
        raise invalid("text", f"The reply is longer than {max_chars} characters")
    return cleaned


async def reply(
    uow: UnitOfWork, deps: ReplyDeps, user_id: str, review_id: int, text: str
) -> ReviewOut:
    session = uow.session
    review = await repository.review_for_update(session, user_id, review_id)
    if review is None:
        raise NotFoundError("Review not found")
    body = _reply_text(text, deps.settings.review_reply_max_chars)
    if review.platform_code not in REVIEW_PLATFORMS:
        raise ReplyNotAllowed(f"{review.platform_code} does not take replies to reviews")
    if review.reply_text is not None:
        raise ReplyExists("This review has a reply already; the platforms allow one")
    if review.can_reply is False:
        raise ReplyNotAllowed("The platform no longer takes a reply to this review")
    now = datetime.now(UTC)
    claimed = review.reply_claimed_at
    if claimed is not None and now - claimed < timedelta(seconds=REPLY_CLAIM_SECONDS):
        raise ReplyInProgress("A reply to this review is being sent")
    connection = await session.get(MarketplaceConnection, review.connection_id)
    assert connection is not None  # the review's foreign key
    if connection.status in _NOT_SYNCED:
        raise ConflictError(
            f"This connection is {connection.status}; connect the shop again to reply",
            code="connection_not_active",
        )
    review.reply_claimed_at = now
    ref = ReviewRef(review.external_review_id, review.external_product_id)
    await uow.commit()  # the claim is stored and no transaction stays open during the call
    try:
        await _send(deps, connection, ref, body)
    except ReviewReplyRefused as exc:
        await _release(uow, review)
        if exc.code in _ALREADY_REPLIED:
            raise ReplyExists(f"The platform says: {exc.message}", platformCode=exc.code) from exc
        raise ReplyNotAllowed(
            f"The platform refused the reply: {exc.message}", platformCode=exc.code
        ) from exc
    except AuthError as exc:
        await _release(uow, review)
        raise ReauthRequired(exc.message) from exc
    except HostNotConfigured as exc:
        await _release(uow, review)
        raise ConnectionMisconfigured(exc.message) from exc
    except MarketplaceError as exc:
        await _release(uow, review)
        raise MarketplaceUnavailable(f"The reply was not sent: {exc}") from exc
    review.reply_text = body
    review.reply_at = datetime.now(UTC)
    review.reply_claimed_at = None
    review.can_reply = False
    await session.flush()
    row = await repository.review_row(session, user_id, review_id)
    assert row is not None
    return review_out(row[0], row[1])


async def _release(uow: UnitOfWork, review: MarketplaceReview) -> None:
    """Drop the claim, committed before the error answer (whose rollback would keep it)."""
    review.reply_claimed_at = None
    await uow.commit()


async def _send(
    deps: ReplyDeps, connection: MarketplaceConnection, ref: ReviewRef, text: str
) -> None:
    ensure_callable(connection, deps.settings)
    client = build_client(
        PlatformCode(connection.platform_code),
        decrypt_credentials(connection, deps.cipher),
        deps.settings,
        tuning=CONNECT_CHECK_TUNING,  # interactive: fail fast rather than back off for long
        token_store=DatabaseTokenStore(deps.sessionmaker, deps.cipher, connection.id),
        http_client=deps.gateway.http_client,
        country=connection.country,
    )
    async with client:
        await client.reply_review(ref, text)
