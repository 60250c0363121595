"""The marketplace hosts a connection is bound to.

A connection keeps the API host (and, for Lazada, the token host) it was created against.
Settings name the hosts for new connections only: if they change (a `serve` restarted without
the sandbox exports), a connection made against the old hosts is `misconfigured` and no call
is made with its tokens, so tokens issued by one server are never sent to another. An
operator moves connections to the configured hosts on purpose with
`omni-sales move-hosts` (see `move_to_configured_hosts`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.connections import repository
from app.models import MarketplaceConnection
from app.models.enums import ConnectionStatus
from app.platforms.errors import HostNotConfigured
from app.platforms.registry import client_config
from app.platforms.types import PlatformCode

# The setting that names each platform's API host (for the message).
_SETTING = {
    PlatformCode.SHOPEE: "SHOPEE_BASE_URL",
    PlatformCode.LAZADA: "LAZADA_BASE_URL",
    PlatformCode.FACEBOOK: "FACEBOOK_GRAPH_URL",
    PlatformCode.TIKTOK: "TIKTOK_BASE_URL",
}


@dataclass(frozen=True, slots=True)
class Hosts:
    api: str
    auth: str | None = None  # Lazada's token host (refreshes go there)


def configured_hosts(settings: Settings, platform: PlatformCode, country: str | None) -> Hosts:
    """Where a connection of `platform` in `country` is called under these settings."""
    config = client_config(settings, platform, country=country)
    return Hosts(config.base_url, config.auth_url or None)


def stored_hosts(connection: MarketplaceConnection) -> Hosts | None:
    """None for a row written before hosts were recorded by anything but the service."""
    if connection.api_base_url is None:
        return None
    return Hosts(connection.api_base_url, connection.auth_base_url)


def bind_to_configured_hosts(connection: MarketplaceConnection, settings: Settings) -> None:
    """Record the hosts the connection's credentials were just checked against."""
    hosts = configured_hosts(settings, PlatformCode(connection.platform_code), connection.country)
    connection.api_base_url = hosts.api
    connection.auth_base_url = hosts.auth


def host_problem(connection: MarketplaceConnection, settings: Settings) -> str | None:
    """Why the connection may not be called under these settings (None: it may)."""
    stored = stored_hosts(connection)
    if stored is None:
        return None
    platform = PlatformCode(connection.platform_code)
    current = configured_hosts(settings, platform, connection.country)
    if stored == current:
        return None
    was, now = (
        (stored.api, current.api) if stored.api != current.api else (stored.auth, current.auth)
    )
    return (
        f"This connection was made against {was}, but this installation now points "
        f"{platform.value} at {now} ({_SETTING[platform]}). Its tokens are not sent there: "
        f"restore the setting, or move the connection on purpose with "
        f"`omni-sales move-hosts --platform {platform.value}`."
    )


def ensure_callable(connection: MarketplaceConnection, settings: Settings) -> None:
    """Raise before any network call when the connection's hosts are not configured."""
    problem = host_problem(connection, settings)
    if problem is not None:
        raise HostNotConfigured(problem, platform=connection.platform_code)


_NOT_CHECKED = (ConnectionStatus.DISCONNECTED,)


async def _connections(
    session: AsyncSession, platform: PlatformCode | None, ids: Sequence[uuid.UUID] | None = None
) -> Sequence[MarketplaceConnection]:
    query = select(MarketplaceConnection).where(
        MarketplaceConnection.status.not_in(_NOT_CHECKED),
        MarketplaceConnection.api_base_url.is_not(None),
    )
    if platform is not None:
        query = query.where(MarketplaceConnection.platform_code == platform.value)
    if ids is not None:
        query = query.where(MarketplaceConnection.id.in_(ids))
    rows = await session.scalars(query.order_by(MarketplaceConnection.id))
    return rows.all()


async def reconcile_host_statuses(session: AsyncSession, settings: Settings) -> int:
    """Mark every connection whose hosts are not configured `misconfigured` (naming the host),
    and put one whose hosts are configured again back to `active`. Run when a process
    starts and by the connection checks; returns how many changed."""
    changed = 0
    for connection in await _connections(session, None):
        problem = host_problem(connection, settings)
        if problem is not None and (
            connection.status != ConnectionStatus.MISCONFIGURED
            or connection.status_reason != problem
        ):
            await repository.mark_status(
                session, connection.id, ConnectionStatus.MISCONFIGURED, problem
            )
            changed += 1
        elif problem is None and connection.status == ConnectionStatus.MISCONFIGURED:
            await repository.mark_status(session, connection.id, ConnectionStatus.ACTIVE, None)
            changed += 1
    return changed


async def move_to_configured_hosts(
    session: AsyncSession, settings: Settings, platform: PlatformCode | None = None
) -> list[uuid.UUID]:
    """The operator's deliberate move: bind the connections (of `platform`) to the hosts the
    settings name now, and make the misconfigured ones `active` again (the next check and
    sync reach the new hosts with the stored tokens). Returns the moved ids."""
    moved: list[uuid.UUID] = []
    for connection in await _connections(session, platform):
        if host_problem(connection, settings) is None:
            continue
        bind_to_configured_hosts(connection, settings)
        if connection.status == ConnectionStatus.MISCONFIGURED:
            connection.status = ConnectionStatus.ACTIVE
            connection.status_reason = None
        moved.append(connection.id)
    await session.flush()
    return moved
