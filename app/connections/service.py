"""Connecting, listing, changing and disconnecting shops."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import ClientTuning, Settings
from app.connections import repository
from app.connections.catalog import PLATFORMS, PlatformSpec
from app.connections.credentials import decrypt_credentials, masked, store_credentials
from app.connections.schemas import (
    ConnectionCreate,
    ConnectionOut,
    ConnectionUpdate,
    FieldOut,
    PlatformOut,
    ScopeOut,
)
from app.crypto import CredentialCipher
from app.errors import AppError, ConflictError, NotFoundError, ValidationFailed
from app.models import MarketplaceConnection
from app.platforms.base import TokenStore
from app.platforms.errors import (
    AuthError,
    MarketplaceError,
    PermanentError,
    RateLimitedError,
    ReauthRequiredError,
    TransientError,
)
from app.platforms.registry import build_client
from app.platforms.types import Credentials, PlatformCode, ShopInfo

# A connect request is interactive: fail fast instead of backing off for half a minute.
CONNECT_CHECK_TUNING = ClientTuning(max_attempts=2, backoff_base_seconds=0.2, timeout_seconds=15)


@dataclass(slots=True)
class PlatformGateway:
    """How the connections service reaches marketplaces (settings and a shared HTTP client)."""

    settings: Settings
    http_client: httpx.AsyncClient | None = None

    async def check_shop(
        self,
        platform: PlatformCode,
        credentials: Credentials,
        *,
        token_store: TokenStore | None = None,
    ) -> tuple[ShopInfo, Credentials]:
        """The shop, and the credentials after the check: a check that had to refresh an
        expired token returns the new pair, which the caller must store (Shopee refresh
        tokens work once)."""
        client = build_client(
            platform,
            credentials,
            self.settings,
            tuning=CONNECT_CHECK_TUNING,
            http_client=self.http_client,
            token_store=token_store,
        )
        async with client:
            shop = await client.check_shop()
            return shop, client.credentials


def to_out(connection: MarketplaceConnection, cipher: CredentialCipher) -> ConnectionOut:
    return ConnectionOut.model_validate(
        {
            **{c.key: getattr(connection, c.key) for c in MarketplaceConnection.__table__.columns},
            "credentials": masked(connection, cipher),
        }
    )


async def list_platforms(session: AsyncSession) -> list[PlatformOut]:
    rows = await repository.list_platforms(session)
    out = []
    for row in rows:
        platform = known_platform(row.code)
        if platform is None:
            continue
        spec = PLATFORMS.get(platform)
        if spec is None:
            continue
        out.append(
            PlatformOut(
                code=row.code,
                name=row.name,
                is_active=row.is_active,
                required_fields=[_field_out(f) for f in spec.required],
                optional_fields=[_field_out(f) for f in spec.optional],
                scopes=[ScopeOut(name=s.name, hint=s.hint) for s in spec.scopes],
            )
        )
    return out


def known_platform(code: str) -> PlatformCode | None:
    try:
        return PlatformCode(code.lower())
    except ValueError:
        return None


def _field_out(spec: object) -> FieldOut:
    return FieldOut.model_validate(spec, from_attributes=True)


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _validate_create(body: ConnectionCreate) -> tuple[PlatformSpec, dict[str, str]]:
    values = {
        name: _clean(getattr(body, attr))
        for name, attr in (
            ("userId", "user_id"),
            ("platformCode", "platform_code"),
            ("shopId", "shop_id"),
            ("shopName", "shop_name"),
            ("accessToken", "access_token"),
            ("apiKey", "api_key"),
            ("apiSecret", "api_secret"),
            ("refreshToken", "refresh_token"),
        )
    }
    platform_code = values["platformCode"]
    platform = known_platform(platform_code) if platform_code is not None else None
    if platform_code is not None and platform is None:
        raise ValidationFailed(
            f"Unknown platformCode '{platform_code}'; expected one of "
            + ", ".join(p.value for p in PlatformCode),
            code="unknown_platform",
            fields=["platformCode"],
        )
    spec = PLATFORMS[platform] if platform is not None else None
    required = ["userId", "platformCode"] + ([f.name for f in spec.required] if spec else [])
    missing = [name for name in required if values.get(name) is None]
    if missing:
        raise ValidationFailed(
            "Missing required fields: " + ", ".join(missing),
            code="missing_required_fields",
            fields=missing,
        )
    assert spec is not None
    for name, value in values.items():
        problem = spec.invalid_value(name, value) if value is not None else None
        if problem:
            raise ValidationFailed(problem, code="invalid_field", fields=[name])
    if values["refreshToken"] is not None and spec.field("refreshToken") is None:
        raise ValidationFailed(
            f"{spec.name} has no refresh token; leave refreshToken out",
            code="invalid_field",
            fields=["refreshToken"],
        )
    return spec, {k: v for k, v in values.items() if v is not None}


async def _verify_with_platform(
    gateway: PlatformGateway, platform: PlatformCode, credentials: Credentials
) -> tuple[ShopInfo, Credentials]:
    try:
        return await gateway.check_shop(platform, credentials)
    except (TransientError, RateLimitedError) as exc:
        raise AppError(
            f"Could not reach {platform.value} to check the credentials: {exc.message}",
            code="marketplace_unavailable",
            status_code=502,
        ) from exc
    except MarketplaceError as exc:
        raise AppError(
            f"Failed to connect marketplace: {exc.message}",
            code="marketplace_connection_failed",
            status_code=400,
        ) from exc


async def create_connection(
    session: AsyncSession,
    body: ConnectionCreate,
    *,
    cipher: CredentialCipher,
    gateway: PlatformGateway,
) -> MarketplaceConnection:
    spec, values = _validate_create(body)
    platform_row = await repository.get_platform(session, spec.code.value)
    if platform_row is None or not platform_row.is_active:
        raise ValidationFailed(
            f"{spec.name} is not enabled on this installation",
            code="platform_inactive",
            fields=["platformCode"],
        )
    user_id, shop_id = values["userId"], values["shopId"]
    existing = await repository.find_by_shop(session, user_id, spec.code.value, shop_id)
    if existing is not None and existing.status != "disconnected":
        raise ConflictError(
            "This shop is already connected",
            code="connection_exists",
            connectionId=str(existing.id),
        )
    credentials = Credentials(
        shop_id=shop_id,
        api_key=values["apiKey"],
        api_secret=values["apiSecret"],
        access_token=values["accessToken"],
        refresh_token=values.get("refreshToken"),
    )
    shop, credentials = await _verify_with_platform(gateway, spec.code, credentials)
    connection = existing or MarketplaceConnection(
        id=uuid.uuid4(), user_id=user_id, platform_code=spec.code.value, shop_id=shop_id
    )
    connection.shop_name = values.get("shopName") or shop.name
    connection.status = "active"
    connection.status_reason = None
    connection.is_active = True
    connection.sync_interval_minutes = body.sync_interval_minutes
    store_credentials(connection, credentials, cipher)
    session.add(connection)
    await session.flush()
    await session.refresh(connection)
    return connection


async def list_connections(
    session: AsyncSession, user_id: str, *, include_disconnected: bool = False
) -> Sequence[MarketplaceConnection]:
    return await repository.list_for_user(
        session, user_id, include_disconnected=include_disconnected
    )


async def get_connection(
    session: AsyncSession, user_id: str, connection_id: uuid.UUID, *, for_update: bool = False
) -> MarketplaceConnection:
    connection = await repository.get_for_user(
        session, user_id, connection_id, for_update=for_update
    )
    if connection is None:
        raise NotFoundError("Connection not found")
    return connection


async def update_connection(
    session: AsyncSession,
    user_id: str,
    connection_id: uuid.UUID,
    body: ConnectionUpdate,
    *,
    cipher: CredentialCipher,
    gateway: PlatformGateway,
) -> tuple[MarketplaceConnection, bool]:
    """Returns the connection and whether it was re-authorized (new credentials checked after
    an auth failure), which calls for a catch-up sync."""
    connection = await get_connection(session, user_id, connection_id, for_update=True)
    if connection.status == "disconnected":
        raise ConflictError("This connection is disconnected; connect the shop again")
    reauthorized = False
    if body.shop_name is not None:
        connection.shop_name = _clean(body.shop_name)
    if body.sync_interval_minutes is not None:
        connection.sync_interval_minutes = body.sync_interval_minutes
    if body.is_active is not None:
        connection.is_active = body.is_active
    if body.credentials is not None:
        current = decrypt_credentials(connection, cipher)
        changes = {
            key: _clean(value)
            for key, value in body.credentials.model_dump(exclude_none=True).items()
        }
        blank = [key for key, value in changes.items() if value is None]
        if blank:
            names = ", ".join(f"credentials.{_camel(k)}" for k in blank)
            raise ValidationFailed(f"Blank values: {names}", code="invalid_field", fields=blank)
        spec = PLATFORMS[PlatformCode(connection.platform_code)]
        new_key = changes.get("api_key")
        if new_key is not None and (problem := spec.invalid_value("apiKey", new_key)):
            raise ValidationFailed(problem, code="invalid_field", fields=["credentials.apiKey"])
        updated = Credentials(
            shop_id=current.shop_id,
            api_key=changes.get("api_key") or current.api_key,
            api_secret=changes.get("api_secret") or current.api_secret,
            access_token=changes.get("access_token") or current.access_token,
            refresh_token=changes.get("refresh_token") or current.refresh_token,
            access_expires_at=None if "access_token" in changes else current.access_expires_at,
        )
        shop, updated = await _verify_with_platform(
            gateway, PlatformCode(connection.platform_code), updated
        )
        store_credentials(connection, updated, cipher)
        reauthorized = connection.status in ("error", "reauth_required")
        connection.status = "active"
        connection.status_reason = None
        if not connection.shop_name:
            connection.shop_name = shop.name
    await session.flush()
    await session.refresh(connection)
    return connection, reauthorized


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)


async def disconnect(
    session: AsyncSession, user_id: str, connection_id: uuid.UUID, *, cipher: CredentialCipher
) -> None:
    """Keeps the shop's orders for history but forgets every credential."""
    connection = await get_connection(session, user_id, connection_id, for_update=True)
    wiped = cipher.encrypt("")
    connection.api_key_encrypted = wiped
    connection.api_secret_encrypted = wiped
    connection.access_token_encrypted = wiped
    connection.refresh_token_encrypted = None
    connection.access_token_expires_at = None
    connection.refresh_token_expires_at = None
    connection.status = "disconnected"
    connection.status_reason = "Disconnected by the seller"
    connection.is_active = False
    await session.flush()


async def mark_status(
    session: AsyncSession, connection_id: uuid.UUID, status: str, reason: str | None
) -> None:
    """Set only the status columns, so tokens refreshed meanwhile by another transaction are
    never overwritten with a stale copy."""
    await session.execute(
        update(MarketplaceConnection)
        .where(
            MarketplaceConnection.id == connection_id,
            # Disconnecting is the seller's word; a sync finishing later must not undo it.
            MarketplaceConnection.status != "disconnected",
        )
        .values(status=status, status_reason=reason, updated_at=func.now())
    )


def status_for_failure(error: MarketplaceError) -> str | None:
    """The connection status a failed marketplace call calls for (None: leave it)."""
    if isinstance(error, ReauthRequiredError):
        return "reauth_required"
    if isinstance(error, AuthError | PermanentError):
        return "error"
    return None


async def recheck_connection(
    session: AsyncSession,
    connection_id: uuid.UUID,
    *,
    cipher: CredentialCipher,
    gateway: PlatformGateway,
    token_store: TokenStore,
) -> str:
    """Ask the marketplace whether the stored credentials still work; record the answer."""
    connection = await session.get(MarketplaceConnection, connection_id)
    if connection is None or connection.status == "disconnected":
        return "disconnected"
    platform = PlatformCode(connection.platform_code)
    try:
        shop, _ = await gateway.check_shop(
            platform, decrypt_credentials(connection, cipher), token_store=token_store
        )
    except MarketplaceError as exc:
        new_status = status_for_failure(exc)
        if new_status is not None:
            await mark_status(session, connection_id, new_status, exc.message)
            return new_status
        return connection.status  # transient: nothing learned about the credentials
    await mark_status(session, connection_id, "active", None)
    if not connection.shop_name and shop.name:
        await session.execute(
            update(MarketplaceConnection)
            .where(MarketplaceConnection.id == connection_id)
            .values(shop_name=shop.name)
        )
    return "active"
