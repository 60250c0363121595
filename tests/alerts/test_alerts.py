"""Alerts: raised once per event in the event's transaction, delivered signed, retried with
back-off until the receiver takes them, and never sent twice."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from arq.worker import Retry
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.alerts import service
from app.alerts import tasks as alert_tasks
from app.alerts.service import AlertType, raise_alert
from app.config import Settings
from app.models import JobOutbox, MarketplaceAlert, MarketplaceSyncLog
from app.worker import CRON_JOBS, FUNCTIONS, create_worker
from app.worker_context import WorkerContext
from tests.alerts.conftest import Receiver
from tests.conftest import RunningSandbox, alter_connection
from tests.sync.conftest import connect_shop


async def alerts(session_factory: async_sessionmaker[AsyncSession]) -> list[MarketplaceAlert]:
    async with session_factory() as session:
        rows = await session.scalars(select(MarketplaceAlert).order_by(MarketplaceAlert.created_at))
        return list(rows.all())


async def run_alert_jobs(settings: Settings) -> None:
    """A real arq worker in burst mode with the alert jobs (deferred retries included)."""
    functions = [f for f in FUNCTIONS if f not in alert_tasks.FUNCTIONS]
    worker = create_worker(
        settings,
        functions=[*functions, *alert_tasks.FUNCTIONS],
        cron_jobs=CRON_JOBS,
        burst=True,
        handle_signals=False,
        poll_delay=0.01,
    )
    try:
        await worker.async_run()
    finally:
        await worker.close()


async def new_connection(api: httpx.AsyncClient, sandbox: RunningSandbox) -> dict[str, Any]:
    connection, _ = await connect_shop(api, sandbox, "lazada")
    return connection


async def raise_one(
    session_factory: async_sessionmaker[AsyncSession],
    connection: dict[str, Any],
    dedupe_key: str = "test:1",
) -> None:
    async with session_factory() as session:
        await raise_alert(
            session,
            type=AlertType.REAUTH_REQUIRED,
            connection_id=uuid.UUID(connection["id"]),
            platform_code="lazada",
            message="The seller revoked the app",
            dedupe_key=dedupe_key,
        )
        await session.commit()


async def test_an_alert_is_sent_once_signed_in_the_standard_webhooks_format(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
    receiver: Receiver,
) -> None:
    connection = await new_connection(api, sandbox)
    await raise_one(session_factory, connection)
    await raise_one(session_factory, connection)  # the same event raised again: no new alert
    assert await service.sweep(worker_context) == 1
    await run_alert_jobs(settings)

    assert len(receiver.received) == 1
    delivered = receiver.received[0]
    receiver.verify(delivered)
    assert delivered.json["type"] == "connection.reauth_required"
    assert delivered.json["connectionId"] == connection["id"]
    assert delivered.json["platformCode"] == "lazada"
    assert delivered.json["message"] == "The seller revoked the app"
    assert datetime.fromisoformat(delivered.json["at"]) > datetime.now(UTC) - timedelta(minutes=1)
    [row] = await alerts(session_factory)
    assert delivered.headers["webhook-id"] == str(row.id)
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)
    assert row.sent_at is not None

    # Sweeping and running the job again sends nothing more.
    assert await service.sweep(worker_context) == 0
    assert await service.deliver(worker_context, row.id) == "skipped"
    assert len(receiver.received) == 1


async def test_raising_an_alert_queues_its_delivery_in_the_same_transaction(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    receiver: Receiver,
) -> None:
    connection = await new_connection(api, sandbox)
    await raise_one(session_factory, connection)
    await raise_one(session_factory, connection)  # a repeat queues nothing
    async with session_factory() as session:
        jobs = (await session.scalars(select(JobOutbox.function))).all()
    assert jobs == [service.DELIVER_JOB]
    await run_alert_jobs(settings)  # no sweep: the job came with the alert
    assert len(receiver.received) == 1
    receiver.verify(receiver.received[0])


async def test_a_failed_delivery_is_retried_with_backoff_under_the_same_id(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service, "RETRY_BASE_SECONDS", 0.01)
    connection = await new_connection(api, sandbox)
    await raise_one(session_factory, connection)
    receiver.fail_next = 2
    await service.sweep(worker_context)
    await run_alert_jobs(settings)

    assert len(receiver.received) == 3
    assert len({item.headers["webhook-id"] for item in receiver.received}) == 1
    assert len({item.body for item in receiver.received}) == 1  # the same bytes each time
    for item in receiver.received:
        receiver.verify(item)
    [row] = await alerts(session_factory)
    assert (row.status, row.attempts) == ("sent", 3)


async def test_a_pending_retry_waits_for_its_backoff_before_the_sweeper_requeues_it(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
    receiver: Receiver,
) -> None:
    connection = await new_connection(api, sandbox)
    await raise_one(session_factory, connection)
    receiver.fail_next = 1
    [row] = await alerts(session_factory)
    with pytest.raises(Retry):
        await service.deliver(worker_context, row.id)
    [row] = await alerts(session_factory)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error == "The alert receiver answered HTTP 503"
    assert row.next_attempt_at > datetime.now(UTC) + timedelta(seconds=service.RETRY_BASE_SECONDS)
    assert await service.sweep(worker_context) == 0  # not due yet
    assert await service.deliver(worker_context, row.id) == "sent"  # the deferred job's run
    assert len(receiver.received) == 2


async def test_delivery_gives_up_after_the_last_attempt(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service, "MAX_ATTEMPTS", 2)
    connection = await new_connection(api, sandbox)
    await raise_one(session_factory, connection)
    receiver.fail_next = 10
    [row] = await alerts(session_factory)
    with pytest.raises(Retry):
        await service.deliver(worker_context, row.id)
    assert await service.deliver(worker_context, row.id) == "failed"
    assert await service.deliver(worker_context, row.id) == "skipped"
    [row] = await alerts(session_factory)
    assert (row.status, row.attempts) == ("failed", 2)
    assert len(receiver.received) == 2


async def test_without_a_receiver_configured_alerts_are_kept_but_not_sent(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
    receiver: Receiver,
) -> None:
    connection = await new_connection(api, sandbox)
    await raise_one(session_factory, connection)
    unconfigured = WorkerContext.create(
        settings.model_copy(update={"alert_webhook_url": None}), redis=redis
    )
    try:
        [row] = await alerts(session_factory)
        assert await service.deliver(unconfigured, row.id) == "skipped"
    finally:
        await unconfigured.close()
    [row] = await alerts(session_factory)
    assert row.status == "skipped"
    assert "ALERT_WEBHOOK_URL" in (row.last_error or "")
    assert receiver.received == []


async def add_finished_log(
    session_factory: async_sessionmaker[AsyncSession], connection: dict[str, Any], status: str
) -> uuid.UUID:
    async with session_factory() as session:
        log = MarketplaceSyncLog(
            connection_id=uuid.UUID(connection["id"]),
            user_id=connection["userId"],
            status=status,
            finished_at=datetime.now(UTC),
            error_message="Invalid signature" if status == "failed" else None,
        )
        session.add(log)
        await session.flush()
        await service.alert_if_failing_repeatedly(
            session,
            connection_id=log.connection_id,
            platform_code="lazada",
            sync_log_id=log.id,
        )
        await session.commit()
        return log.id


async def test_two_failed_syncs_in_a_row_raise_one_alert_per_streak(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection = await new_connection(api, sandbox)
    await add_finished_log(session_factory, connection, "failed")
    assert await alerts(session_factory) == []
    second = await add_finished_log(session_factory, connection, "failed")
    await add_finished_log(session_factory, connection, "failed")  # same streak: no new alert
    [alert] = await alerts(session_factory)
    assert alert.type == "sync.failed_repeatedly"
    assert str(second) in alert.dedupe_key
    assert "Invalid signature" in alert.body

    await add_finished_log(session_factory, connection, "success")
    await add_finished_log(session_factory, connection, "failed")
    assert len(await alerts(session_factory)) == 1
    await add_finished_log(session_factory, connection, "failed")  # a new streak
    assert len(await alerts(session_factory)) == 2


async def test_an_authorization_expiring_within_7_days_is_alerted_once(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
) -> None:
    soon = await new_connection(api, sandbox)
    later = await new_connection(api, sandbox)
    expired = await new_connection(api, sandbox)
    now = datetime.now(UTC)
    await alter_connection(
        session_factory, soon["id"], refresh_token_expires_at=now + timedelta(days=6)
    )
    await alter_connection(
        session_factory, later["id"], refresh_token_expires_at=now + timedelta(days=8)
    )
    await alter_connection(
        session_factory, expired["id"], refresh_token_expires_at=now - timedelta(days=1)
    )
    assert await service.scan_expiring_authorizations(worker_context) == 1
    assert await service.scan_expiring_authorizations(worker_context) == 1  # runs every 6 h
    [alert] = await alerts(session_factory)
    assert alert.type == "authorization.expiring"
    assert alert.connection_id == uuid.UUID(soon["id"])

    # Re-authorized: a new expiry date is a new alert when it comes near.
    await alter_connection(
        session_factory, soon["id"], refresh_token_expires_at=now + timedelta(days=5)
    )
    await service.scan_expiring_authorizations(worker_context)
    assert len(await alerts(session_factory)) == 2


async def test_a_shopee_expiry_push_alerts_once_a_week(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    connection = await new_connection(api, sandbox)
    for _ in range(2):  # Shopee repeats push code 12
        async with session_factory() as session:
            await service.alert_authorization_expiring(
                session,
                connection_id=uuid.UUID(connection["id"]),
                platform_code="shopee",
                message="Shopee says this shop's authorization expires within 7 days",
            )
            await session.commit()
    assert len(await alerts(session_factory)) == 1


async def test_delivery_holds_no_row_lock_while_the_receiver_answers(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    worker_context: WorkerContext,
    receiver: Receiver,
) -> None:
    connection = await new_connection(api, sandbox)
    await raise_one(session_factory, connection)
    [row] = await alerts(session_factory)
    seen: dict[str, Any] = {}

    async def during_request() -> None:
        async with session_factory() as other, other.begin():
            await other.execute(text("SET LOCAL lock_timeout = '200ms'"))
            try:
                await other.execute(
                    select(MarketplaceAlert.id)
                    .where(MarketplaceAlert.id == row.id)
                    .with_for_update()
                )
                seen["row_free"] = True
            except DBAPIError:
                seen["row_free"] = False
        # A second runner meanwhile finds the delivery claimed and sends nothing.
        seen["second_runner"] = await service.deliver(worker_context, row.id)

    receiver.during_request = during_request
    assert await service.deliver(worker_context, row.id) == "sent"
    assert seen == {"row_free": True, "second_runner": "skipped"}
    assert len(receiver.received) == 1
    [row] = await alerts(session_factory)
    assert (row.status, row.attempts, row.claimed_until) == ("sent", 1, None)
