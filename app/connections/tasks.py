"""Jobs of the connections domain."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from app.connections import service
from app.connections.credentials import DatabaseTokenStore
from app.connections.hosts import reconcile_host_statuses
from app.jobs.outbox import enqueue
from app.models import MarketplaceConnection
from app.models.enums import ConnectionStatus
from app.worker_context import JobContext

VERIFY_JOB = "verify_connection"


async def verify_connection(ctx: JobContext, connection_id: str) -> str:
    """Re-check one connection's credentials with its marketplace; idempotent."""
    wc = ctx["app"]
    cid = uuid.UUID(connection_id)
    async with wc.unit_of_work() as uow:
        return await service.recheck_connection(
            uow.session,
            cid,
            cipher=wc.cipher,
            gateway=wc.gateway,
            token_store=DatabaseTokenStore(wc.sessionmaker, wc.cipher, cid),
        )


async def verify_all_connections(ctx: JobContext) -> int:
    """Cron: queue a check of every live connection, so a revoked authorization shows up as
    `reauth_required` in the connections list before the seller misses orders."""
    wc = ctx["app"]
    async with wc.sessionmaker() as session:
        # No call for a connection whose hosts are not configured; one whose are again is back.
        await reconcile_host_statuses(session, wc.settings)
        await session.commit()
    async with wc.unit_of_work() as uow:
        ids = (
            await uow.session.scalars(
                select(MarketplaceConnection.id).where(
                    MarketplaceConnection.is_active.is_(True),
                    MarketplaceConnection.status.in_(
                        (ConnectionStatus.ACTIVE, ConnectionStatus.ERROR)
                    ),
                )
            )
        ).all()
        for cid in ids:
            enqueue(uow.session, VERIFY_JOB, str(cid), dedupe_key=f"{VERIFY_JOB}:{cid}")
    return len(ids)
