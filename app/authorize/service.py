"""Connect flows: send the seller to the marketplace's authorization page with a signed,
single-use `state`, then turn the code the marketplace sends back into connections."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode, urlsplit

from app.authorize import repository
from app.config import Settings
from app.connections.service import connect_authorized, known_platform
from app.crypto import CredentialCipher
from app.errors import AppError, ValidationFailed
from app.models.connect_state import MarketplaceConnectState
from app.platforms.authorize import ConnectFlow, ConsentRefused, OperatorApp
from app.platforms.errors import MarketplaceError
from app.platforms.registry import (
    CONNECT_FORMS,
    PlatformGateway,
    connect_flow_class,
    operator_app,
)
from app.platforms.types import PlatformCode
from app.uow import UnitOfWork

logger = logging.getLogger("app.authorize")

STATE_LIFETIME = timedelta(minutes=10)
_KEY_LABEL = b"omni-sales/connect-state/v1"

INVALID_STATE = "invalid_state"
CONSENT_REFUSED = "consent_refused"
EXCHANGE_FAILED = "exchange_failed"


class InvalidState(AppError):
    """A callback whose state is bad, expired or used, with no redirect URL to report it to."""

    status_code = 400
    code = INVALID_STATE


@dataclass(frozen=True, slots=True)
class StartedFlow:
    authorization_url: str
    state: str


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


def verify_state(settings: Settings, platform: PlatformCode, state: str) -> uuid.UUID | None:
    """The state's row id when the signature is right and it has not expired, else None:
    a forged or stale state is refused without a query."""
    parts = state.split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    nonce, expires_text, given = parts
    expected = _signature(_state_key(settings), platform.value, nonce, int(expires_text))
    if not hmac.compare_digest(expected.encode(), given.encode()):
        return None
    if int(expires_text) <= time.time():
        return None
    try:
        return uuid.UUID(bytes=base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4)))
    except ValueError:
        return None


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


def _app(settings: Settings, platform: PlatformCode) -> OperatorApp:
    app = operator_app(settings, platform)
    if app is None:
        raise ValidationFailed(
            f"The {CONNECT_FORMS[platform].name} connect flow needs the operator's app "
            "credentials in the settings; connect with the form instead",
            code="connect_flow_not_configured",
            fields=["platformCode"],
        )
    return OperatorApp(*app)


def _check_redirect(settings: Settings, redirect_url: str | None) -> str | None:
    """Only http(s) URLs, and only on the frontend's origins when any are configured, so a
    started flow cannot send a seller's browser to a stranger's site."""
    if redirect_url is None:
        return None
    parts = urlsplit(redirect_url)
    allowed = {_origin(url) for url in [*settings.cors_origins, settings.connect_redirect_url]}
    allowed.discard(None)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        problem = "redirectUrl must be an absolute http(s) URL"
    elif allowed and _origin(redirect_url) not in allowed:
        problem = "redirectUrl must be on one of the frontend's origins (CORS_ORIGINS)"
    else:
        return redirect_url
    raise ValidationFailed(problem, code="invalid_field", fields=["redirectUrl"])


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.netloc else None


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
    base_url: str,
    gateway: PlatformGateway,
) -> StartedFlow:
    settings = gateway.settings
    platform = _platform(platform_code)
    flow = _flow(settings, platform, gateway)
    redirect_url = _check_redirect(settings, redirect_url)
    now = datetime.now(UTC)
    expires = int((now + STATE_LIFETIME).timestamp())
    row = MarketplaceConnectState(
        id=uuid.uuid4(),
        user_id=user_id,
        platform_code=platform.value,
        redirect_url=redirect_url,
        callback_url=callback_url(settings.public_base_url or base_url, platform),
        expires_at=datetime.fromtimestamp(expires, UTC),
    )
    await repository.delete_expired(uow.session, now)
    await repository.add_state(uow.session, row)
    state = sign_state(settings, platform, row.id, expires)
    url = flow.authorization_url(callback_url=row.callback_url, state=state)
    await flow.aclose()
    return StartedFlow(authorization_url=url, state=state)


# --- callback --------------------------------------------------------------------------------


def with_result(url: str, params: list[tuple[str, str]]) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


async def callback(
    uow: UnitOfWork,
    platform_code: str,
    query: Mapping[str, str],
    *,
    cipher: CredentialCipher,
    gateway: PlatformGateway,
) -> str:
    """The URL to send the seller's browser to: the redirect URL with `connectionId` (one per
    shop the seller granted) or `error`. Raises InvalidState when the state is bad and no
    CONNECT_REDIRECT_URL is set to report it to."""
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
        if fallback is None:
            raise InvalidState("This authorization link is invalid, expired or already used")
        return with_result(fallback, [("error", INVALID_STATE)])
    # The state is spent whatever happens next: commit that before talking to the platform.
    await uow.commit()
    destination = row.redirect_url or fallback
    if destination is None:
        raise InvalidState("No redirect URL: set CONNECT_REDIRECT_URL or pass redirectUrl")
    flow = _flow(settings, platform, gateway)
    try:
        try:
            answer = flow.parse_callback(query)
        except ConsentRefused:
            return with_result(destination, [("error", CONSENT_REFUSED)])
        try:
            shops = await flow.exchange(answer, callback_url=row.callback_url)
            connections = [
                await connect_authorized(
                    uow,
                    row.user_id,
                    platform,
                    shop.credentials,
                    country=shop.country,
                    cipher=cipher,
                    gateway=gateway,
                )
                for shop in shops
            ]
            await uow.commit()
        except (MarketplaceError, AppError) as exc:
            await uow.rollback()
            # Never the code or a token: the platform's words and our error code only.
            logger.warning(
                "connect flow failed",
                extra={"platform": platform.value, "reason": str(exc)},
            )
            return with_result(destination, [("error", EXCHANGE_FAILED)])
    finally:
        await flow.aclose()
    return with_result(destination, [("connectionId", str(c.id)) for c in connections])
