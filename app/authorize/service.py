"""Connect flows: send the seller to the marketplace's authorization page with a signed,
single-use `state`; the callback turns the code the marketplace sends back into a short-lived,
single-use grant; only the user who started the flow turns the grant into connections
(`complete`), so a seller who opens someone else's link never connects into their account."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from pydantic import SecretStr

from app.authorize import repository
from app.config import Settings
from app.connections.service import (
    CheckedShop,
    check_shop,
    known_platform,
    save_connection,
)
from app.crypto import CredentialCipher
from app.errors import AppError, ForbiddenError, MarketplaceRejectedCredentials, ValidationFailed
from app.models import MarketplaceConnection
from app.models.connect_grant import MarketplaceConnectGrant
from app.models.connect_state import MarketplaceConnectState
from app.platforms.authorize import AuthorizedShop, ConnectFlow, ConsentRefused, OperatorApp
from app.platforms.errors import MarketplaceError
from app.platforms.registry import (
    CONNECT_FORMS,
    PlatformGateway,
    connect_flow_class,
    operator_app,
)
from app.platforms.types import Credentials, PlatformCode
from app.uow import UnitOfWork

logger = logging.getLogger("app.authorize")

STATE_LIFETIME = timedelta(minutes=10)
GRANT_LIFETIME = timedelta(minutes=10)
_KEY_LABEL = b"omni-sales/connect-state/v1"

INVALID_STATE = "invalid_state"
CONSENT_REFUSED = "consent_refused"
EXCHANGE_FAILED = "exchange_failed"


class InvalidState(AppError):
    """A callback whose state is bad, expired or used, with no redirect URL to report it to."""

    status_code = 400
    code = INVALID_STATE


class GrantExpired(AppError):
    status_code = 410
    code = "grant_expired"

    def __init__(self) -> None:
        super().__init__(
            "This grant is used, expired (grants last 10 minutes) or unknown; connect again"
        )


class GrantNotYours(ForbiddenError):
    code = "grant_not_yours"

    def __init__(self) -> None:
        super().__init__(
            "This grant belongs to a flow another user started; it has been destroyed and "
            "nothing was connected"
        )


@dataclass(frozen=True, slots=True)
class StartedFlow:
    authorization_url: str
    state: str


@dataclass(frozen=True, slots=True)
class CallbackOutcome:
    """Where the callback sends the browser (`location`), or, with nowhere to send it, what
    the page shows: the grant to complete with, or the error."""

    platform: str
    location: str | None = None
    grant: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SkippedShop:
    """A shop the grant named whose check failed; left out, the others are connected."""

    shop_id: str
    country: str | None
    message: str


@dataclass(slots=True)
class Completed:
    connections: list[MarketplaceConnection]
    skipped: list[SkippedShop] = field(default_factory=list)


# --- the signed state ------------------------------------------------------------------------


def _state_key(settings: Settings) -> bytes:
    """A key of its own, derived from a secret the deployment has anyway."""
    if settings.auth_jwt_secret is not None:
        material = settings.auth_jwt_secret.get_secret_value()
    elif settings.credentials_encryption_keys:
        material = settings.credentials_encryption_keys[0].get_secret_value()
    else:
        raise RuntimeError("AUTH_JWT_SECRET or CREDENTIALS_ENCRYPTION_KEYS must be set")
    return hmac.new(material.encode(), _KEY_LABEL, hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _signature(key: bytes, platform: str, nonce: str, expires: int) -> str:
    return _b64(hmac.new(key, f"{platform}.{nonce}.{expires}".encode(), hashlib.sha256).digest())


def sign_state(
    settings: Settings, platform: PlatformCode, state_id: uuid.UUID, expires: int
) -> str:
    nonce = _b64(state_id.bytes)
    return f"{nonce}.{expires}.{_signature(_state_key(settings), platform.value, nonce, expires)}"


# What sign_state makes: a 16-byte nonce, a Unix time in ASCII digits, a SHA-256 signature,
# all base64url. Anything else is refused before it is parsed (int() of 4,301 digits raises,
# and str.isdigit() takes "²" for a digit).
_STATE = re.compile(r"([A-Za-z0-9_-]{22})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})")


def verify_state(settings: Settings, platform: PlatformCode, state: str) -> uuid.UUID | None:
    """The state's row id when the signature is right and it has not expired, else None:
    a forged, malformed or stale state is refused without a query."""
    parts = _STATE.fullmatch(state)
    if parts is None:
        return None
    nonce, expires_text, given = parts.groups()
    expires = int(expires_text)
    expected = _signature(_state_key(settings), platform.value, nonce, expires)
    if not hmac.compare_digest(expected.encode(), given.encode()) or expires <= time.time():
        return None
    return uuid.UUID(bytes=base64.urlsafe_b64decode(nonce + "=="))


# --- start -----------------------------------------------------------------------------------


def callback_url(base_url: str, platform: PlatformCode) -> str:
    return f"{base_url.rstrip('/')}/api/marketplace/connect/{platform.value}/callback"


def _platform(platform_code: str) -> PlatformCode:
    platform = known_platform(platform_code)
    if platform is None or platform not in CONNECT_FORMS:
        raise ValidationFailed(
            f"Unknown platformCode '{platform_code}'; expected one of "
            + ", ".join(p.value for p in PlatformCode),
            code="unknown_platform",
            fields=["platformCode"],
        )
    return platform


# The settings naming the operator's app on each platform, as missing-setting errors name them.
_APP_SETTINGS = {
    PlatformCode.SHOPEE: ("SHOPEE_PARTNER_ID", "SHOPEE_PARTNER_KEY"),
    PlatformCode.LAZADA: ("LAZADA_APP_KEY", "LAZADA_APP_SECRET"),
    PlatformCode.FACEBOOK: ("META_APP_ID", "META_APP_SECRET"),
    PlatformCode.TIKTOK: ("TIKTOK_APP_KEY", "TIKTOK_APP_SECRET"),
}


def _is_set(value: object) -> bool:
    return bool(value.get_secret_value() if isinstance(value, SecretStr) else value)


def _app(settings: Settings, platform: PlatformCode) -> OperatorApp:
    """The operator's app; 422 `connect_flow_not_configured` naming every missing setting.
    PUBLIC_BASE_URL is one: the callback registered with the platform must not follow the
    Host header of whoever calls start."""
    app = operator_app(settings, platform)
    missing = [
        name
        for name in _APP_SETTINGS[platform]
        if app is None and not _is_set(getattr(settings, name.lower()))
    ]
    if not settings.public_base_url:
        missing.append("PUBLIC_BASE_URL")
    if missing:
        error = ValidationFailed(
            f"The {CONNECT_FORMS[platform].name} connect flow is not configured: set "
            + ", ".join(missing)
            + " (or connect with the form)",
            code="connect_flow_not_configured",
            fields=["platformCode"],
        )
        error.extra["missingSettings"] = missing
        raise error
    assert app is not None
    return OperatorApp(*app)


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a port out of range, a malformed IPv6 host
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.hostname}{port}".lower()


def redirect_origins(settings: Settings) -> set[str]:
    """CONNECT_REDIRECT_ALLOWLIST, or CONNECT_REDIRECT_URL's origin alone."""
    listed: list[str | None] = [*settings.connect_redirect_allowlist] or [
        settings.connect_redirect_url
    ]
    return {origin for origin in map(_origin, listed) if origin is not None}


def _check_redirect(settings: Settings, redirect_url: str | None) -> str | None:
    """Only http(s) URLs on an allowed origin, so a started flow can never send a seller's
    browser (and the grant it carries) to a stranger's site."""
    if redirect_url is None:
        return None
    origin = _origin(redirect_url)
    allowed = redirect_origins(settings)
    if origin is None:
        problem = "redirectUrl must be an absolute http(s) URL"
    elif origin not in allowed:
        problem = (
            "redirectUrl must be on an allowed origin (CONNECT_REDIRECT_ALLOWLIST, default "
            "CONNECT_REDIRECT_URL's origin)" + ("" if allowed else "; none is configured")
        )
    else:
        return redirect_url
    raise ValidationFailed(problem, code="invalid_field", fields=["redirectUrl"])


def _flow(settings: Settings, platform: PlatformCode, gateway: PlatformGateway) -> ConnectFlow:
    return connect_flow_class(platform)(
        settings, _app(settings, platform), http_client=gateway.http_client
    )


async def start(
    uow: UnitOfWork,
    platform_code: str,
    user_id: str,
    redirect_url: str | None,
    *,
    gateway: PlatformGateway,
) -> StartedFlow:
    settings = gateway.settings
    platform = _platform(platform_code)
    flow = _flow(settings, platform, gateway)
    redirect_url = _check_redirect(settings, redirect_url)
    assert settings.public_base_url is not None  # _app insists
    now = datetime.now(UTC)
    expires = int((now + STATE_LIFETIME).timestamp())
    row = MarketplaceConnectState(
        id=uuid.uuid4(),
        user_id=user_id,
        platform_code=platform.value,
        redirect_url=redirect_url,
        callback_url=callback_url(settings.public_base_url, platform),
        expires_at=datetime.fromtimestamp(expires, UTC),
    )
    await repository.delete_expired(uow.session, now)
    await repository.add_state(uow.session, row)
    state = sign_state(settings, platform, row.id, expires)
    url = flow.authorization_url(callback_url=row.callback_url, state=state)
    await flow.aclose()
    return StartedFlow(authorization_url=url, state=state)


# --- callback: the code becomes a grant ------------------------------------------------------


def with_result(url: str, params: list[tuple[str, str]]) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


def _failed(platform: str, destination: str | None, error: str) -> CallbackOutcome:
    if destination is None:
        return CallbackOutcome(platform=platform, error=error)
    return CallbackOutcome(platform=platform, location=with_result(destination, [("error", error)]))


async def callback(
    uow: UnitOfWork,
    platform_code: str,
    query: Mapping[str, str],
    *,
    cipher: CredentialCipher,
    gateway: PlatformGateway,
) -> CallbackOutcome:
    """Exchange the code once, check each shop it grants, keep the result as a grant of the
    user who started the flow, and send the browser to the redirect URL with `grant=` (or
    `error=`). Nothing is connected here: the browser that comes back may be anyone's."""
    settings = gateway.settings
    fallback = settings.connect_redirect_url
    platform = known_platform(platform_code)
    state_id = verify_state(settings, platform, query.get("state") or "") if platform else None
    row = (
        await repository.consume_state(uow.session, state_id, platform.value)
        if state_id is not None and platform is not None
        else None
    )
    if row is None or platform is None:
        return _failed(platform_code[:32], fallback, INVALID_STATE)
    # The state is spent whatever happens next: commit that before talking to the platform.
    await uow.commit()
    destination = row.redirect_url or fallback
    flow = _flow(settings, platform, gateway)
    try:
        answer = flow.parse_callback(query)
    except ConsentRefused:
        await flow.aclose()
        return _failed(platform.value, destination, CONSENT_REFUSED)
    try:
        shops = await flow.exchange(answer, callback_url=row.callback_url)
        checked, skipped = await _check_each(gateway, platform, shops)
    except (MarketplaceError, AppError) as exc:
        # Never the code or a token: the platform's words and our error code only.
        logger.warning(
            "connect flow failed", extra={"platform": platform.value, "reason": str(exc)}
        )
        return _failed(platform.value, destination, EXCHANGE_FAILED)
    finally:
        await flow.aclose()
    grant = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    await repository.delete_expired_grants(uow.session, now)
    await repository.add_grant(
        uow.session,
        MarketplaceConnectGrant(
            grant_hash=_grant_hash(grant),
            user_id=row.user_id,
            platform_code=platform.value,
            payload_encrypted=cipher.encrypt(_grant_payload(checked, skipped)),
            expires_at=now + GRANT_LIFETIME,
        ),
    )
    if destination is None:
        return CallbackOutcome(platform=platform.value, grant=grant)
    return CallbackOutcome(
        platform=platform.value,
        location=with_result(destination, [("grant", grant), ("platform", platform.value)]),
    )


async def _check_each(
    gateway: PlatformGateway, platform: PlatformCode, shops: list[AuthorizedShop]
) -> tuple[list[CheckedShop], list[SkippedShop]]:
    """Each granted shop checked like a pasted one. One failing (a Lazada country whose
    gateway refuses the seller) is left out, never failing the others; all failing is a
    failed exchange."""
    checked: list[CheckedShop] = []
    skipped: list[SkippedShop] = []
    last_error: AppError | None = None
    for shop in shops:
        try:
            checked.append(await check_shop(gateway, platform, shop.credentials, shop.country))
        except MarketplaceRejectedCredentials as exc:
            last_error = exc
            skipped.append(SkippedShop(shop.credentials.shop_id, shop.country, exc.message))
    if not checked:
        raise last_error or MarketplaceRejectedCredentials("The grant named no shop")
    return checked, skipped


def _grant_hash(grant: str) -> str:
    return hashlib.sha256(grant.encode()).hexdigest()


def _credentials_json(credentials: Credentials) -> dict[str, Any]:
    return {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in asdict(credentials).items()
    }


def _grant_payload(checked: list[CheckedShop], skipped: list[SkippedShop]) -> str:
    return json.dumps(
        {
            "shops": [
                {
                    "credentials": _credentials_json(shop.credentials),
                    "name": shop.name,
                    "country": shop.country,
                }
                for shop in checked
            ],
            "skipped": [asdict(shop) for shop in skipped],
        }
    )


def _read_grant_payload(
    platform: PlatformCode, text: str
) -> tuple[list[CheckedShop], list[SkippedShop]]:
    payload = json.loads(text)
    shops = []
    for entry in payload["shops"]:
        values = dict(entry["credentials"])
        for key in ("access_expires_at", "refresh_expires_at"):
            if values.get(key):
                values[key] = datetime.fromisoformat(values[key])
        shops.append(
            CheckedShop(
                platform=platform,
                credentials=Credentials(**values),
                name=entry["name"],
                country=entry["country"],
            )
        )
    return shops, [SkippedShop(**entry) for entry in payload["skipped"]]


# --- complete: the grant becomes connections -------------------------------------------------


async def complete(
    uow: UnitOfWork,
    user_id: str,
    grant: str,
    *,
    cipher: CredentialCipher,
    settings: Settings,
) -> Completed:
    """Turn the grant into connections of `user_id` (the token's user), one per shop it holds;
    a shop already connected to the user is updated, not doubled, and each starts its first
    sync. The grant is spent by this call whatever its outcome: another user's grant is 403
    and destroyed, so the seller who approved can start over and nobody else can use it."""
    row = await repository.take_grant(uow.session, _grant_hash(grant))
    if row is None or row.expires_at <= datetime.now(UTC):
        await uow.commit()
        raise GrantExpired()
    if not hmac.compare_digest(row.user_id.encode(), user_id.encode()):
        await uow.commit()  # destroyed before answering
        logger.warning(
            "connect grant presented by another user", extra={"platform": row.platform_code}
        )
        raise GrantNotYours()
    platform = PlatformCode(row.platform_code)
    shops, skipped = _read_grant_payload(platform, cipher.decrypt(row.payload_encrypted))
    connections = [
        await save_connection(
            uow, user_id, shop, cipher=cipher, settings=settings, replace_existing=True
        )
        for shop in shops
    ]
    return Completed(connections=connections, skipped=skipped)
