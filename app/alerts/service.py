"""Operator alerts: an outbox row written in the transaction of the event that causes it, and
a worker job that POSTs it to ALERT_WEBHOOK_URL signed the Standard Webhooks way, retrying with
back-off until the receiver answers 2xx.

Each alert is sent once: the unique dedupe key makes raising it twice a no-op, and delivery
claims the row (a short lease, committed) before the POST and records the outcome in a short
transaction after it, so no row lock or transaction is held across the call. A worker dying
between the two resends it with the same `webhook-id`, which Standard Webhooks receivers
deduplicate on. Retries follow the one retry policy, with the alerts' own limits."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

import httpx
import orjson
from arq.worker import Retry
from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks import Webhook

from app.jobs.outbox import enqueue
from app.jobs.policy import RetryPolicy
from app.models import MarketplaceAlert, MarketplaceConnection, MarketplaceSyncLog
from app.models.enums import ConnectionStatus, SyncStatus

if TYPE_CHECKING:  # the connections repository imports this module; keep it light
    from app.worker_context import WorkerContext

logger = logging.getLogger("app.alerts")

DELIVER_JOB = "deliver_alert"
MAX_ATTEMPTS = 15
RETRY_BASE_SECONDS = 5.0
RETRY_CAP_SECONDS = 3600.0
POST_TIMEOUT_SECONDS = 10.0
# A claimed delivery is skipped by other runners this long (longer than the POST may take).
CLAIM_SECONDS = 3 * POST_TIMEOUT_SECONDS
# The sweeper queues a pending alert at most this often while its job is queued or running.
SWEEP_REQUEUE_GRACE_SECONDS = 60
SWEEP_BATCH = 200
EXPIRY_NOTICE = timedelta(days=7)
MAX_MESSAGE_CHARS = 1000


class AlertType(StrEnum):
    REAUTH_REQUIRED = "connection.reauth_required"
    CONNECTION_ERROR = "connection.error"
    SYNC_FAILED_REPEATEDLY = "sync.failed_repeatedly"
    AUTHORIZATION_EXPIRING = "authorization.expiring"
    LOW_STOCK = "inventory.low_stock"


class AlertStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # gave up after MAX_ATTEMPTS
    SKIPPED = "skipped"  # no ALERT_WEBHOOK_URL or secret configured


STATUS_ALERTS = {
    ConnectionStatus.REAUTH_REQUIRED: AlertType.REAUTH_REQUIRED,
    ConnectionStatus.ERROR: AlertType.CONNECTION_ERROR,
}


def job_id(alert_id: uuid.UUID) -> str:
    return f"alert:{alert_id}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def raise_alert(
    session: AsyncSession,
    *,
    type: AlertType | str,
    connection_id: uuid.UUID | None,
    platform_code: str | None,
    message: str,
    dedupe_key: str,
    details: Mapping[str, object] | None = None,
) -> None:
    """Write the alert, and the job that delivers it, into the caller's transaction (the edge
    commits). An alert with the same dedupe key already raised is left as it is. `details`:
    the fields of this alert type, besides the ones every alert has."""
    body = orjson.dumps(
        {
            "type": str(type),
            "connectionId": str(connection_id) if connection_id else None,
            "platformCode": platform_code,
            **(details or {}),
            "message": message[:MAX_MESSAGE_CHARS],
            "at": _iso(datetime.now(UTC)),
        }
    ).decode()
    alert_id = await session.scalar(
        insert(MarketplaceAlert)
        .values(
            id=uuid.uuid4(),
            type=str(type),
            connection_id=connection_id,
            dedupe_key=dedupe_key[:255],
            body=body,
        )
        .on_conflict_do_nothing(index_elements=[MarketplaceAlert.dedupe_key])
        .returning(MarketplaceAlert.id)
    )
    if alert_id is not None:
        enqueue(session, DELIVER_JOB, str(alert_id), dedupe_key=job_id(alert_id))


# --- triggers (called from the code that changes the state) ---------------------------------


async def alert_status_change(
    session: AsyncSession,
    *,
    connection_id: uuid.UUID,
    platform_code: str,
    status: str,
    reason: str | None,
    changed_at: datetime,
) -> None:
    """A connection moved into `reauth_required` or `error` (once per transition)."""
    alert_type = STATUS_ALERTS.get(ConnectionStatus(status))
    if alert_type is None:
        return
    default = (
        "The shop must be re-authorized"
        if alert_type is AlertType.REAUTH_REQUIRED
        else "The marketplace refused the connection's calls"
    )
    await raise_alert(
        session,
        type=alert_type,
        connection_id=connection_id,
        platform_code=platform_code,
        message=reason or default,
        dedupe_key=f"{alert_type}:{connection_id}:{_iso(changed_at)}",
    )


async def alert_if_failing_repeatedly(
    session: AsyncSession, *, connection_id: uuid.UUID, platform_code: str, sync_log_id: uuid.UUID
) -> None:
    """After a failed run is flushed: alert when it makes two failures in a row, once per
    streak (the third failure in a row raises nothing new)."""
    await session.flush()
    statuses: Sequence[str] = (
        await session.scalars(
            select(MarketplaceSyncLog.status)
            .where(
                MarketplaceSyncLog.connection_id == connection_id,
                MarketplaceSyncLog.status != SyncStatus.RUNNING,
                MarketplaceSyncLog.finished_at.is_not(None),
            )
            .order_by(MarketplaceSyncLog.finished_at.desc(), MarketplaceSyncLog.started_at.desc())
            .limit(3)
        )
    ).all()
    failed = [status == SyncStatus.FAILED for status in statuses]
    if failed[:2] != [True, True] or (len(failed) == 3 and failed[2]):
        return
    log = await session.get(MarketplaceSyncLog, sync_log_id)
    reason = f": {log.error_message}" if log is not None and log.error_message else ""
    await raise_alert(
        session,
        type=AlertType.SYNC_FAILED_REPEATEDLY,
        connection_id=connection_id,
        platform_code=platform_code,
        message=f"The last two syncs of this connection failed{reason}"[:MAX_MESSAGE_CHARS],
        dedupe_key=f"{AlertType.SYNC_FAILED_REPEATEDLY}:{connection_id}:{sync_log_id}",
    )


async def alert_authorization_expiring(
    session: AsyncSession,
    *,
    connection_id: uuid.UUID,
    platform_code: str,
    message: str,
    expires_at: datetime | None = None,
    noticed_at: datetime | None = None,
) -> None:
    """Once per expiry: keyed by its date when known, else by the week it was noticed (Shopee's
    push code 12 names no date and may come more than once)."""
    if expires_at is not None:
        when = expires_at.astimezone(UTC).date().isoformat()
    else:
        noticed = noticed_at or datetime.now(UTC)
        when = f"week-{int(noticed.timestamp()) // (7 * 86400)}"
    await raise_alert(
        session,
        type=AlertType.AUTHORIZATION_EXPIRING,
        connection_id=connection_id,
        platform_code=platform_code,
        message=message,
        dedupe_key=f"{AlertType.AUTHORIZATION_EXPIRING}:{connection_id}:{when}",
    )


async def scan_expiring_authorizations(wc: WorkerContext) -> int:
    """Cron: connections whose refresh token (Lazada's and Shopee's authorization) expires
    within 7 days; returns how many were looked at."""
    now = datetime.now(UTC)
    async with wc.sessionmaker() as session:
        rows = (
            await session.execute(
                select(
                    MarketplaceConnection.id,
                    MarketplaceConnection.platform_code,
                    MarketplaceConnection.shop_name,
                    MarketplaceConnection.shop_id,
                    MarketplaceConnection.refresh_token_expires_at,
                ).where(
                    MarketplaceConnection.status != ConnectionStatus.DISCONNECTED,
                    MarketplaceConnection.refresh_token_expires_at > now,
                    MarketplaceConnection.refresh_token_expires_at <= now + EXPIRY_NOTICE,
                )
            )
        ).all()
        for row in rows:
            expires: datetime = row.refresh_token_expires_at
            await alert_authorization_expiring(
                session,
                connection_id=row.id,
                platform_code=row.platform_code,
                message=(
                    f"The {row.platform_code} authorization of shop {row.shop_name or row.shop_id} "
                    f"expires at {_iso(expires)}; re-authorize the connection before then"
                ),
                expires_at=expires,
            )
        await session.commit()
    return len(rows)


# --- delivery --------------------------------------------------------------------------------


def retry_policy() -> RetryPolicy:
    """The one retry policy with the alerts' limits: a receiver may be down for hours."""
    return RetryPolicy(
        base_seconds=RETRY_BASE_SECONDS,
        cap_seconds=RETRY_CAP_SECONDS,
        max_attempts=MAX_ATTEMPTS,
        max_wait_seconds=RETRY_CAP_SECONDS,
    )


def _receiver(wc: WorkerContext) -> tuple[str | None, str | None]:
    secret = wc.settings.alert_webhook_secret
    return wc.settings.alert_webhook_url, secret.get_secret_value() if secret else None


def signed_headers(secret: str, message_id: str, body: str, now: datetime) -> dict[str, str]:
    """Standard Webhooks: v1 = base64 HMAC-SHA256 of "{id}.{timestamp}.{body}" under the
    base64-decoded `whsec_` secret."""
    moment = now.astimezone(UTC).replace(microsecond=0)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, moment, body),
        "content-type": "application/json",
    }


class DeliveryFailed(Exception):
    pass


async def _post(
    http: httpx.AsyncClient, url: str, secret: str, alert_id: uuid.UUID, body: str
) -> None:
    headers = signed_headers(secret, str(alert_id), body, datetime.now(UTC))
    try:
        response = await http.post(
            url, content=body.encode(), headers=headers, timeout=POST_TIMEOUT_SECONDS
        )
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"Could not reach the alert receiver ({type(exc).__name__})") from exc
    if not response.is_success:
        raise DeliveryFailed(f"The alert receiver answered HTTP {response.status_code}")


async def deliver(wc: WorkerContext, alert_id: uuid.UUID) -> str:
    """Send one pending alert. Safe to run twice: the row is claimed (attempt counted, a short
    lease committed) before the POST, so a second runner skips it; the outcome is written in
    its own short transaction after the call."""
    url, secret = _receiver(wc)
    now = datetime.now(UTC)
    async with wc.sessionmaker() as session:
        alert = await session.scalar(
            select(MarketplaceAlert)
            .where(
                MarketplaceAlert.id == alert_id,
                MarketplaceAlert.status == AlertStatus.PENDING,
                or_(
                    MarketplaceAlert.claimed_until.is_(None),
                    MarketplaceAlert.claimed_until < now,
                ),
            )
            .with_for_update(skip_locked=True)
        )
        if alert is None:
            return "skipped"
        if not url or not secret:
            alert.status = AlertStatus.SKIPPED
            alert.last_error = "ALERT_WEBHOOK_URL or ALERT_WEBHOOK_SECRET is not set"
            await session.commit()
            return AlertStatus.SKIPPED.value
        alert.attempts += 1
        alert.claimed_until = now + timedelta(seconds=CLAIM_SECONDS)
        attempts, body = alert.attempts, alert.body
        await session.commit()
    error: str | None = None
    try:
        await _post(wc.http, url, secret, alert_id, body)
    except (DeliveryFailed, ValueError) as exc:
        # ValueError: a secret that is not base64; retried, so fixing it needs no replay.
        error = str(exc) or type(exc).__name__
    return await _record(wc, alert_id, attempts, error)


async def _record(wc: WorkerContext, alert_id: uuid.UUID, attempts: int, error: str | None) -> str:
    now = datetime.now(UTC)
    values: dict[str, object] = {"claimed_until": None}
    delay: float | None = None
    if error is None:
        values.update(status=AlertStatus.SENT, sent_at=now, last_error=None)
        outcome = AlertStatus.SENT.value
    else:
        logger.warning(
            "alert not delivered",
            extra={"alert_id": str(alert_id), "attempts": attempts, "error": error},
        )
        values["last_error"] = error[:MAX_MESSAGE_CHARS]
        policy = retry_policy()
        if attempts >= policy.max_attempts:
            values["status"] = AlertStatus.FAILED
            outcome = AlertStatus.FAILED.value
        else:
            delay = policy.delay(attempts)
            values["next_attempt_at"] = now + timedelta(seconds=delay + SWEEP_REQUEUE_GRACE_SECONDS)
            outcome = AlertStatus.PENDING.value
    async with wc.sessionmaker() as session:
        await session.execute(
            update(MarketplaceAlert).where(MarketplaceAlert.id == alert_id).values(**values)
        )
        await session.commit()
    if delay is not None:
        # The job runtime runs this job again after the delay, under the same alert id.
        raise Retry(defer=delay)
    return outcome


async def sweep(wc: WorkerContext) -> int:
    """Cron: queue pending alerts that are due (raised without a queued job, or whose job was
    lost). A delivery job still waiting has the same dedupe key, so the repeat is a no-op."""
    now = datetime.now(UTC)
    async with wc.sessionmaker() as session:
        due = list(
            (
                await session.scalars(
                    select(MarketplaceAlert.id)
                    .where(
                        MarketplaceAlert.status == AlertStatus.PENDING,
                        MarketplaceAlert.next_attempt_at <= now,
                    )
                    .order_by(MarketplaceAlert.next_attempt_at)
                    .limit(SWEEP_BATCH)
                    .with_for_update(skip_locked=True)
                )
            ).all()
        )
        if not due:
            return 0
        await session.execute(
            update(MarketplaceAlert)
            .where(MarketplaceAlert.id.in_(due))
            .values(next_attempt_at=now + timedelta(seconds=SWEEP_REQUEUE_GRACE_SECONDS))
        )
        # A delivery job still waiting has the same dedupe key: asking again is a no-op.
        for alert_id in due:
            enqueue(session, DELIVER_JOB, str(alert_id), dedupe_key=job_id(alert_id))
        await session.commit()
    return len(due)
