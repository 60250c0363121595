"""Connecting, listing, changing and disconnecting shops."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.buyers.service import erase_connection_buyer_data
from app.config import Settings
from app.connections import repository
from app.connections.credentials import decrypt_credentials, masked, store_credentials
from app.connections.hosts import bind_to_configured_hosts, host_problem
from app.connections.repository import mark_status, status_for_failure
from app.connections.schemas import (
    ConnectionCreate,
    ConnectionOut,
    ConnectionUpdate,
    CredentialsUpdate,
    FieldOut,
    PlatformOut,
    ScopeOut,
)
from app.crypto import CredentialCipher
from app.errors import (
    ConcurrentChange,
    ConnectionDisconnected,
    ConnectionExists,
    ConnectionMisconfigured,
    FieldProblem,
    MarketplaceRejectedCredentials,
    MarketplaceUnavailable,
    NotFoundError,
    SyncAlreadyRunning,
    ValidationFailed,
    is_deadlock,
)
from app.models import MarketplaceConnection
from app.models.enums import ConnectionStatus, SyncTrigger
from app.platforms.base import TokenStore
from app.platforms.connect_form import PlatformSpec
from app.platforms.errors import MarketplaceError, RateLimitedError, TransientError
from app.platforms.registry import (
    CONNECT_FORMS,
    OPERATOR_APP_FIELDS,
    PlatformGateway,
    connect_form,
    operator_app,
    shop_country,
)
from app.platforms.types import Credentials, PlatformCode, ShopInfo
from app.sync.service import first_sync_at, start_sync
from app.uow import UnitOfWork


async def _save(session: AsyncSession, connection: MarketplaceConnection) -> None:
    """Insert or update the connection; a concurrent request that connected the same shop
    first wins, and this one answers 409 pointing at its connection."""
    try:
        async with session.begin_nested():
            session.add(connection)
            await session.flush()
    except IntegrityError:
        winner = await repository.find_by_shop(
            session, connection.user_id, connection.platform_code, connection.shop_id
        )
        raise ConnectionExists(winner.id if winner else None) from None
    await session.refresh(connection)


def default_sync_interval(platform: PlatformCode) -> int:
    # Meta sends no order webhooks, so Facebook orders arrive only through the schedule.
    return 15 if platform is PlatformCode.FACEBOOK else 60


def to_out(connection: MarketplaceConnection, cipher: CredentialCipher) -> ConnectionOut:
    return ConnectionOut.model_validate(
        {
            **{c.key: getattr(connection, c.key) for c in MarketplaceConnection.__table__.columns},
            "credentials": masked(connection, cipher),
        }
    )


async def list_platforms(
    session: AsyncSession, settings: Settings | None = None
) -> list[PlatformOut]:
    """With `settings`, a platform whose operator app is configured lists apiKey and apiSecret
    as optional."""
    rows = await repository.list_platforms(session)
    out = []
    for row in rows:
        platform = known_platform(row.code)
        if platform is None:
            continue
        if platform not in CONNECT_FORMS:
            continue
        spec = connect_form(platform, settings)
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


def _validate_create(
    body: ConnectionCreate, settings: Settings | None = None
) -> tuple[PlatformSpec, dict[str, str]]:
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
            ("shopCipher", "shop_cipher"),
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
    spec = connect_form(platform, settings) if platform is not None else None
    operator = operator_app(settings, platform) if settings and platform else None
    if operator is not None and values["apiKey"] is None and values["apiSecret"] is None:
        # A connection that brings no app of its own uses the operator's; one that brings
        # half of one is reported as missing the other half, never mixed with the operator's.
        values["apiKey"], values["apiSecret"] = operator
    required = ["userId", "platformCode"] + ([f.key for f in spec.required] if spec else [])
    if spec is not None and (values["apiKey"] is None) != (values["apiSecret"] is None):
        required += [name for name in OPERATOR_APP_FIELDS if name not in required]
    missing = [
        spec.wire_name(name) if spec else name for name in required if values.get(name) is None
    ]
    if missing:
        raise ValidationFailed(
            "Missing required fields: " + ", ".join(missing),
            code="missing_required_fields",
            field_messages=[FieldProblem(name, "Field required") for name in missing],
        )
    assert spec is not None
    for name, value in values.items():
        problem = spec.invalid_value(name, value) if value is not None else None
        if problem:
            raise ValidationFailed(problem, code="invalid_field", fields=[spec.wire_name(name)])
    if values["refreshToken"] is not None and spec.field("refreshToken") is None:
        raise ValidationFailed(
            f"{spec.name} has no refresh token; leave refreshToken out",
            code="invalid_field",
            fields=["refreshToken"],
        )
    return spec, {k: v for k, v in values.items() if v is not None}


async def _verify_with_platform(
    gateway: PlatformGateway,
    spec: PlatformSpec,
    credentials: Credentials,
    country: str | None = None,
) -> tuple[ShopInfo, Credentials]:
    """The credentials checked with the marketplace, which must name the same shop: a token of
    one shop stored under another shop's id would file one seller's orders under another."""
    try:
        shop, checked = await gateway.check_shop(spec.code, credentials, country=country)
    except (TransientError, RateLimitedError) as exc:
        raise MarketplaceUnavailable(
            f"Could not reach {spec.name} to check the credentials: {exc.message}"
        ) from exc
    except MarketplaceError as exc:
        raise MarketplaceRejectedCredentials(
            f"Failed to connect marketplace: {exc.message}"
        ) from exc
    reported = spec.canonical_shop_id(shop.shop_id)
    if reported != spec.canonical_shop_id(credentials.shop_id):
        raise MarketplaceRejectedCredentials(
            f"These credentials belong to {spec.name} shop {reported}, "
            f"not to shopId {credentials.shop_id}",
            shopId=credentials.shop_id,
            platformShopId=reported,
        )
    return shop, checked


@dataclass(frozen=True, slots=True)
class CheckedShop:
    """A shop whose credentials the marketplace accepted as its own: ready to be stored."""

    platform: PlatformCode
    credentials: Credentials  # as after the check (a check may have refreshed the token)
    name: str | None
    country: str | None

    @property
    def shop_id(self) -> str:
        return self.credentials.shop_id


async def check_shop(
    gateway: PlatformGateway,
    platform: PlatformCode,
    credentials: Credentials,
    country: str | None = None,
) -> CheckedShop:
    """Ask the marketplace about the credentials (on `country`'s host where it has several);
    they must belong to the shop they name. No transaction may be open: this is a network
    call."""
    spec = CONNECT_FORMS[platform]
    credentials = replace(credentials, shop_id=spec.canonical_shop_id(credentials.shop_id))
    shop, checked = await _verify_with_platform(gateway, spec, credentials, country)
    return CheckedShop(
        platform=platform,
        credentials=checked,
        name=shop.name,
        country=shop_country(platform, shop, country),
    )


async def _ensure_platform_enabled(session: AsyncSession, spec: PlatformSpec) -> None:
    platform_row = await repository.get_platform(session, spec.code.value)
    if platform_row is None or not platform_row.is_active:
        raise ValidationFailed(
            f"{spec.name} is not enabled on this installation",
            code="platform_inactive",
            fields=["platformCode"],
        )


async def create_connection(
    uow: UnitOfWork,
    body: ConnectionCreate,
    *,
    cipher: CredentialCipher,
    gateway: PlatformGateway,
) -> MarketplaceConnection:
    """A pasted connection: checked with the marketplace, stored, and its first sync started
    (unless `startSync` is false), as an authorized one is."""
    spec, values = _validate_create(body, gateway.settings)
    await _ensure_platform_enabled(uow.session, spec)
    user_id, shop_id = values["userId"], spec.canonical_shop_id(values["shopId"])
    existing = await repository.find_by_shop(uow.session, user_id, spec.code.value, shop_id)
    if existing is not None and existing.status != ConnectionStatus.DISCONNECTED:
        raise ConnectionExists(existing.id)
    credentials = Credentials(
        shop_id=shop_id,  # ask the platform about the shop in the form it reports
        api_key=values["apiKey"],
        api_secret=values["apiSecret"],
        access_token=values["accessToken"],
        refresh_token=values.get("refreshToken"),
        shop_cipher=values.get("shopCipher"),
    )
    # No lock is held during the marketplace call; the unique constraint settles races.
    checked = await check_shop(gateway, spec.code, credentials)
    return await save_connection(
        uow,
        user_id,
        checked,
        cipher=cipher,
        settings=gateway.settings,
        shop_name=values.get("shopName"),
        sync_interval_minutes=(
            body.sync_interval_minutes
            if "sync_interval_minutes" in body.model_fields_set
            else "default"
        ),
        replace_existing=False,
        start_first_sync=body.start_sync,
    )


async def save_connection(
    uow: UnitOfWork,
    user_id: str,
    shop: CheckedShop,
    *,
    cipher: CredentialCipher,
    settings: Settings,
    shop_name: str | None = None,
    sync_interval_minutes: int | Literal["default"] | None = "default",
    replace_existing: bool,
    start_first_sync: bool = True,
) -> MarketplaceConnection:
    """Store a checked shop: a new connection, a disconnected one revived, or (with
    `replace_existing`, as an authorization flow does) an existing one given the new tokens;
    otherwise an existing one is 409. Then its first sync is started (a catch-up one for a
    connection that had been refused); the job is sent after the caller commits."""
    session = uow.session
    spec = CONNECT_FORMS[shop.platform]
    await _ensure_platform_enabled(session, spec)
    existing = await repository.find_by_shop(session, user_id, spec.code.value, shop.shop_id)
    connection = (
        await repository.get_for_update(session, existing.id) if existing is not None else None
    )
    trigger = SyncTrigger.MANUAL
    if connection is None:
        connection = MarketplaceConnection(
            id=uuid.uuid4(), user_id=user_id, platform_code=spec.code.value, shop_id=shop.shop_id
        )
    elif connection.status != ConnectionStatus.DISCONNECTED and not replace_existing:
        raise ConnectionExists(connection.id)  # connected by a concurrent request
    elif connection.status in (ConnectionStatus.ERROR, ConnectionStatus.REAUTH_REQUIRED):
        # Orders may have been missed while the credentials were refused: catch up now.
        trigger = SyncTrigger.CATCH_UP
    revived = connection.status in (None, ConnectionStatus.DISCONNECTED)
    if revived:
        connection.is_active = True
    if sync_interval_minutes != "default":
        connection.sync_interval_minutes = sync_interval_minutes
    elif revived and connection.sync_interval_minutes is None and existing is None:
        connection.sync_interval_minutes = default_sync_interval(spec.code)
    if revived or sync_interval_minutes != "default":
        connection.next_sync_at = first_sync_at(connection, datetime.now(UTC))
    connection.shop_name = shop_name or connection.shop_name or shop.name
    connection.country = shop.country or connection.country
    connection.status = ConnectionStatus.ACTIVE
    connection.status_reason = None
    store_credentials(connection, shop.credentials, cipher)
    bind_to_configured_hosts(connection, settings)
    await _save(session, connection)
    if start_first_sync:
        with contextlib.suppress(SyncAlreadyRunning):
            await start_sync(
                uow,
                connection,
                trigger=trigger,
                stale_after=timedelta(seconds=settings.sync_stale_seconds),
            )
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
    uow: UnitOfWork,
    user_id: str,
    connection_id: uuid.UUID,
    body: ConnectionUpdate,
    *,
    cipher: CredentialCipher,
    gateway: PlatformGateway,
) -> MarketplaceConnection:
    """Apply a PATCH. New credentials are checked with the marketplace before the row is locked;
    new credentials after a refusal start a catch-up sync (sent after commit)."""
    session = uow.session
    connection = await get_connection(session, user_id, connection_id)
    if connection.status == ConnectionStatus.DISCONNECTED:
        raise ConnectionDisconnected()
    spec = CONNECT_FORMS[PlatformCode(connection.platform_code)]
    checked: tuple[ShopInfo, Credentials] | None = None
    if body.credentials is not None:
        # New credentials are checked where the connection lives, or nowhere.
        problem = host_problem(connection, gateway.settings)
        if problem is not None:
            raise ConnectionMisconfigured(problem)
        updated = _credentials_after_update(
            spec, decrypt_credentials(connection, cipher), body.credentials
        )
        checked = await _verify_with_platform(gateway, spec, updated, connection.country)
    connection = await get_connection(session, user_id, connection_id, for_update=True)
    if connection.status == ConnectionStatus.DISCONNECTED:
        raise ConnectionDisconnected()  # disconnected while the marketplace was checking
    if body.shop_name is not None:
        connection.shop_name = _clean(body.shop_name)
    if "sync_interval_minutes" in body.model_fields_set:
        connection.sync_interval_minutes = body.sync_interval_minutes
        connection.next_sync_at = first_sync_at(connection, datetime.now(UTC))
    if body.is_active is not None:
        connection.is_active = body.is_active
    reauthorized = False
    if checked is not None:
        shop, credentials = checked
        store_credentials(connection, credentials, cipher)
        bind_to_configured_hosts(connection, gateway.settings)
        reauthorized = connection.status in (
            ConnectionStatus.ERROR,
            ConnectionStatus.REAUTH_REQUIRED,
        )
        connection.status = ConnectionStatus.ACTIVE
        connection.status_reason = None
        if not connection.shop_name:
            connection.shop_name = shop.name
    await session.flush()
    await session.refresh(connection)
    if reauthorized:
        # Orders may have been missed while the credentials were refused: catch up now.
        with contextlib.suppress(SyncAlreadyRunning):
            await start_sync(
                uow,
                connection,
                trigger=SyncTrigger.CATCH_UP,
                stale_after=timedelta(seconds=gateway.settings.sync_stale_seconds),
            )
    return connection


def _credentials_after_update(
    spec: PlatformSpec, current: Credentials, update: CredentialsUpdate
) -> Credentials:
    changes = {key: _clean(value) for key, value in update.model_dump(exclude_none=True).items()}
    blank = [f"credentials.{_camel(key)}" for key, value in changes.items() if value is None]
    if blank:
        raise ValidationFailed(
            "Blank values: " + ", ".join(blank), code="invalid_field", fields=blank
        )
    for key, value in changes.items():
        name = _camel(key)
        if value is None:
            continue
        if key == "refresh_token" and spec.field("refreshToken") is None:
            raise ValidationFailed(
                f"{spec.name} has no refresh token; leave credentials.refreshToken out",
                code="invalid_field",
                fields=["credentials.refreshToken"],
            )
        if problem := spec.invalid_value(name, value):
            raise ValidationFailed(problem, code="invalid_field", fields=[f"credentials.{name}"])
    return Credentials(
        shop_id=current.shop_id,
        api_key=changes.get("api_key") or current.api_key,
        api_secret=changes.get("api_secret") or current.api_secret,
        access_token=changes.get("access_token") or current.access_token,
        refresh_token=changes.get("refresh_token") or current.refresh_token,
        access_expires_at=None if "access_token" in changes else current.access_expires_at,
    )


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)


async def disconnect(
    session: AsyncSession,
    user_id: str,
    connection_id: uuid.UUID,
    *,
    cipher: CredentialCipher,
    erase_buyer_data: bool = False,
) -> None:
    """Keeps the shop's orders for history but forgets every credential (and, when asked, the
    buyer data of its orders).

    The connection's row lock comes first, and a running sync takes the same lock at the start
    of every batch: a batch already writing finishes before this erases, and every later batch
    sees `disconnected` and stops without writing. Another job holding one of the orders
    while it asks for the connection deadlocks with this; PostgreSQL aborts one side, and
    this side runs again (409 `concurrent_change` if it keeps colliding, never 500)."""
    for attempt in range(1, DISCONNECT_ATTEMPTS + 1):
        try:
            async with session.begin_nested():
                await _disconnect_once(
                    session, user_id, connection_id, cipher=cipher, erase=erase_buyer_data
                )
            return
        except DBAPIError as exc:
            if not is_deadlock(exc):
                raise
            if attempt == DISCONNECT_ATTEMPTS:
                raise ConcurrentChange() from exc


DISCONNECT_ATTEMPTS = 3


async def _disconnect_once(
    session: AsyncSession,
    user_id: str,
    connection_id: uuid.UUID,
    *,
    cipher: CredentialCipher,
    erase: bool,
) -> None:
    connection = await get_connection(session, user_id, connection_id, for_update=True)
    if erase:
        await erase_connection_buyer_data(session, connection.id)
    wiped = cipher.encrypt("")
    connection.api_key_encrypted = wiped
    connection.api_secret_encrypted = wiped
    connection.access_token_encrypted = wiped
    connection.refresh_token_encrypted = None
    connection.access_token_expires_at = None
    connection.refresh_token_expires_at = None
    connection.status = ConnectionStatus.DISCONNECTED
    connection.status_reason = "Disconnected by the seller"
    connection.is_active = False
    await session.flush()


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
    if connection is None or connection.status == ConnectionStatus.DISCONNECTED:
        return ConnectionStatus.DISCONNECTED
    problem = host_problem(connection, gateway.settings)
    if problem is not None:  # refused before any call: the tokens stay where they belong
        await mark_status(session, connection_id, ConnectionStatus.MISCONFIGURED, problem)
        return ConnectionStatus.MISCONFIGURED
    platform = PlatformCode(connection.platform_code)
    try:
        shop, _ = await gateway.check_shop(
            platform,
            decrypt_credentials(connection, cipher),
            token_store=token_store,
            country=connection.country,
        )
    except MarketplaceError as exc:
        new_status = status_for_failure(exc)
        if new_status is not None:
            await mark_status(session, connection_id, new_status, exc.message)
            return new_status
        return connection.status  # transient: nothing learned about the credentials
    await mark_status(session, connection_id, ConnectionStatus.ACTIVE, None)
    if not connection.shop_name and shop.name:
        await session.execute(
            update(MarketplaceConnection)
            .where(MarketplaceConnection.id == connection_id)
            .values(shop_name=shop.name)
        )
    return ConnectionStatus.ACTIVE
