"""Bearer JWT auth: HS256 with AUTH_JWT_SECRET or RS256 with AUTH_JWT_PUBLIC_KEY; `sub` is the
user id, and it must equal any `userId` the request names."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.config import Settings
from app.errors import ForbiddenError, UnauthorizedError
from app.schemas import unstorable_text

LEEWAY_SECONDS = 30
VERIFIED_CACHE_SIZE = 4096
# The subject is stored as the owner of every row (String(128) columns), so a signed token
# whose subject could never be stored is refused here rather than failing in the database.
MAX_SUBJECT_LENGTH = 128


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        if settings.auth_jwt_public_key:
            self.algorithm = "RS256"
            self.key: str = settings.auth_jwt_public_key.replace("\\n", "\n")
        elif settings.auth_jwt_secret is not None:
            self.algorithm = "HS256"
            self.key = settings.auth_jwt_secret.get_secret_value()
        else:
            raise RuntimeError("Set AUTH_JWT_SECRET (HS256) or AUTH_JWT_PUBLIC_KEY (RS256)")
        self.audience = settings.auth_jwt_audience
        self.issuer = settings.auth_jwt_issuer
        self.max_ttl_seconds = settings.auth_max_token_ttl_seconds
        self._verified: dict[str, tuple[str, float]] = {}

    def subject(self, token: str) -> str:
        # A client sends the same token with every request: its checked subject is reused until
        # the token expires, sparing a signature check per request.
        cached = self._verified.get(token)
        if cached is not None and cached[1] > time.time():
            return cached[0]
        subject, expires = self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (subject, expires)
        return subject

    def _verify(self, token: str) -> tuple[str, float]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.key,
                algorithms=[self.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["sub", "exp"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError as exc:
            raise UnauthorizedError("The bearer token has expired") from exc
        except jwt.PyJWTError as exc:
            raise UnauthorizedError("The bearer token is invalid") from exc
        expires = float(claims["exp"])
        if expires - time.time() > self.max_ttl_seconds + LEEWAY_SECONDS:
            raise UnauthorizedError(
                "The bearer token expires too far ahead (more than AUTH_MAX_TOKEN_TTL_SECONDS, "
                f"{self.max_ttl_seconds} s); issue one with a shorter lifetime"
            )
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise UnauthorizedError("The bearer token has no subject")
        if len(subject) > MAX_SUBJECT_LENGTH or unstorable_text(subject) is not None:
            raise UnauthorizedError(
                f"The bearer token's subject is not a valid user id (at most "
                f"{MAX_SUBJECT_LENGTH} characters of valid text without NUL)"
            )
        return subject, expires + LEEWAY_SECONDS


def issue_token(
    user_id: str,
    *,
    ttl: timedelta,
    secret: str | None = None,
    private_key: str | None = None,
    audience: str | None = None,
    issuer: str | None = None,
) -> str:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + ttl}
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    if private_key is not None:
        return jwt.encode(claims, private_key, algorithm="RS256")
    if secret is None:
        raise ValueError("a secret or a private key is needed")
    return jwt.encode(claims, secret, algorithm="HS256")


_bearer = HTTPBearer(auto_error=False, description="JWT whose `sub` is the user id")


async def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise UnauthorizedError("Missing bearer token")
    verifier: TokenVerifier = request.app.state.token_verifier
    return verifier.subject(credentials.credentials)


CurrentUser = Annotated[str, Depends(current_user)]


def ensure_same_user(token_user: str, requested_user: str | None) -> str:
    """The user a request acts for: the token's subject, which any named userId must equal."""
    if requested_user is not None and requested_user != token_user:
        raise ForbiddenError("The token does not belong to this userId")
    return token_user
