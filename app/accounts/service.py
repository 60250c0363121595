"""Accounts: creating users, logging in, rotating refresh tokens, and API keys."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import repository
from app.accounts.keys import key_digest, new_api_key
from app.accounts.scopes import Scope
from app.accounts.throttle import Attempt, LoginThrottle
from app.auth import LOGIN_KEY_ID, issue_token
from app.config import Settings
from app.errors import AppError, ConflictError, NotFoundError, ServiceUnavailableError
from app.models.api_key import ApiKey
from app.models.refresh_token import RefreshToken
from app.models.user import User

# NIST SP 800-63B asks for at least 8; 12 keeps a guessed password far out of the throttle's
# reach. Long passphrases are welcome (argon2 takes any length; the request caps it at 1,024).
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024

# argon2-cffi's defaults: argon2id with RFC 9106's low-memory profile. A change of these is
# picked up at the next login of each user (their hash is redone then).
_hasher = PasswordHasher()


# --- errors -------------------------------------------------------------------------------


class InvalidCredentials(AppError):
    status_code = 401
    code = "invalid_credentials"

    def __init__(self) -> None:
        super().__init__("The e-mail or password is wrong")


class TooManyLoginAttempts(AppError):
    status_code = 429
    code = "too_many_attempts"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"Too many failed logins; try again in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
            retryAfter=retry_after,
        )


class LoginUnavailable(ServiceUnavailableError):
    code = "login_unavailable"

    def __init__(self) -> None:
        super().__init__(
            "Login is off: this service signs login tokens with AUTH_JWT_SECRET, which is not "
            "set (tokens of the identity provider of AUTH_JWT_PUBLIC_KEY work as before)"
        )


class InvalidRefreshToken(AppError):
    status_code = 401
    code = "invalid_refresh_token"

    def __init__(self, message: str = "The refresh token is invalid, used, expired or revoked"):
        super().__init__(message)


class RefreshTokenReused(InvalidRefreshToken):
    """A used refresh token came back: someone holds a copy. Its whole family is revoked,
    which the caller must commit before answering."""

    def __init__(self) -> None:
        super().__init__(
            "This refresh token was already used; every token of its login is now revoked, "
            "log in again"
        )


class EmailTaken(ConflictError):
    code = "email_taken"

    def __init__(self) -> None:
        super().__init__("An account with this e-mail exists already")


class InvalidAccount(ValueError):
    """What `user create` refuses before anything is stored (the CLI says it and exits)."""


# --- users --------------------------------------------------------------------------------


def normalize_email(email: str) -> str:
    return email.strip().lower()


def check_new_account(email: str, password: str) -> None:
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in email):
        raise InvalidAccount(f"{email!r} is not an e-mail address")
    if len(email) > 254:
        raise InvalidAccount("the e-mail address is longer than 254 characters")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidAccount(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidAccount(f"the password is longer than {MAX_PASSWORD_LENGTH} characters")


async def create_user(session: AsyncSession, email: str, password: str) -> User:
    email = normalize_email(email)
    check_new_account(email, password)
    if await repository.user_by_email(session, email) is not None:
        raise EmailTaken()
    user = User(email=email, password_hash=await asyncio.to_thread(_hasher.hash, password))
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # created meanwhile by another process
        raise EmailTaken() from exc
    return user


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # Checked against when the e-mail is unknown, so that answer takes as long as a wrong
    # password and the timing tells nothing about which e-mails have accounts.
    return _hasher.hash(secrets.token_urlsafe(16))


def _password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# --- login and refresh --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenPair:
    user_id: str
    access_token: str
    refresh_token: str
    expires_in: int


def _login_secret(settings: Settings) -> str:
    if settings.auth_jwt_secret is None:
        raise LoginUnavailable()
    return settings.auth_jwt_secret.get_secret_value()


def access_token_ttl(settings: Settings) -> int:
    return min(settings.auth_access_token_ttl_seconds, settings.auth_max_token_ttl_seconds)


async def _issue_pair(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID, family_id: uuid.UUID
) -> TokenPair:
    ttl = access_token_ttl(settings)
    access = issue_token(
        str(user_id),
        ttl=timedelta(seconds=ttl),
        secret=_login_secret(settings),
        audience=settings.auth_jwt_audience,
        issuer=settings.auth_jwt_issuer,
        key_id=LOGIN_KEY_ID,
    )
    refresh = secrets.token_urlsafe(32)
    session.add(
        RefreshToken(
            token_hash=hashlib.sha256(refresh.encode()).hexdigest(),
            user_id=user_id,
            family_id=family_id,
            expires_at=datetime.now(UTC)
            + timedelta(seconds=settings.auth_refresh_token_ttl_seconds),
        )
    )
    await session.flush()
    return TokenPair(str(user_id), access, refresh, ttl)


async def login(
    session: AsyncSession, redis: Redis, settings: Settings, email: str, password: str, address: str
) -> TokenPair:
    _login_secret(settings)
    email = normalize_email(email)
    throttle = LoginThrottle(
        redis,
        max_failures=settings.auth_login_max_failures,
        window_seconds=settings.auth_login_window_seconds,
    )
    try:
        admitted = await throttle.admit(email, address)
    except (RedisError, OSError) as exc:
        # Without the counters there is no limit on guessing: refuse rather than allow.
        raise ServiceUnavailableError("Login is unavailable while Redis is unreachable") from exc
    if not isinstance(admitted, Attempt):
        raise TooManyLoginAttempts(admitted)
    user = await repository.user_by_email(session, email)
    stored = user.password_hash if user is not None else _dummy_hash()
    matches = await asyncio.to_thread(_password_matches, stored, password)
    if user is None or not matches:
        raise InvalidCredentials()
    await throttle.succeeded(admitted)
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = await asyncio.to_thread(_hasher.hash, password)
    return await _issue_pair(session, settings, user.id, family_id=uuid.uuid4())


async def refresh(session: AsyncSession, settings: Settings, refresh_token: str) -> TokenPair:
    _login_secret(settings)
    token = await repository.refresh_token_for_update(
        session, hashlib.sha256(refresh_token.encode()).hexdigest()
    )
    if token is None or token.revoked_at is not None:
        raise InvalidRefreshToken()
    if token.used_at is not None:
        await repository.revoke_family(session, token.family_id)
        await session.flush()
        raise RefreshTokenReused()
    now = datetime.now(UTC)
    if token.expires_at <= now:
        raise InvalidRefreshToken("The refresh token has expired; log in again")
    token.used_at = now
    return await _issue_pair(session, settings, token.user_id, token.family_id)


async def logout(session: AsyncSession, refresh_token: str) -> None:
    """Ends the login the token belongs to (every token of its family). An unknown token is
    not an error: the answer is the same, so it tells nothing."""
    token = await repository.refresh_token_for_update(
        session, hashlib.sha256(refresh_token.encode()).hexdigest()
    )
    if token is not None:
        await repository.revoke_family(session, token.family_id)


# --- API keys -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreatedKey:
    row: ApiKey
    key: str


async def create_api_key(
    session: AsyncSession, user_id: str, name: str, scopes: list[Scope]
) -> CreatedKey:
    key = new_api_key()
    row = ApiKey(
        user_id=user_id,
        name=name,
        scopes=sorted({scope.value for scope in scopes}),
        key_hash=key_digest(key),
        last4=key[-4:],
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return CreatedKey(row, key)


async def list_api_keys(session: AsyncSession, user_id: str) -> list[ApiKey]:
    return await repository.active_api_keys(session, user_id)


async def revoke_api_key(session: AsyncSession, user_id: str, key_id: uuid.UUID) -> None:
    if not await repository.revoke_api_key(session, user_id, key_id):
        raise NotFoundError("API key not found")
