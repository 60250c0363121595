"""Bearer auth: a JWT (HS256 with AUTH_JWT_SECRET or RS256 with AUTH_JWT_PUBLIC_KEY; `sub` is the
user id) or an API key (`omni_...`, acting as its user within its scopes). The user must equal
any `userId` the request names.

Login tokens (`POST /api/auth/login`) are HS256 with AUTH_JWT_SECRET and carry the key id
`LOGIN_KEY_ID`: with AUTH_JWT_PUBLIC_KEY set as well, those and the provider's RS256 tokens are
both accepted, while other HS256 tokens stay refused (the provider's set-up is unchanged)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.accounts.keys import API_KEY_PREFIX, authenticate_api_key
from app.accounts.scopes import required_scope
from app.config import Settings
from app.errors import ForbiddenError, UnauthorizedError
from app.schemas import unstorable_text

LEEWAY_SECONDS = 30
VERIFIED_CACHE_SIZE = 4096
# The subject is stored as the owner of every row (String(128) columns), so a signed token
# whose subject could never be stored is refused here rather than failing in the database.
MAX_SUBJECT_LENGTH = 128
# The `kid` header of the tokens this service signs at login.
LOGIN_KEY_ID = "omni-sales-login"


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self.secret = (
            settings.auth_jwt_secret.get_secret_value() if settings.auth_jwt_secret else None
        )
        self.public_key = (
            settings.auth_jwt_public_key.replace("\\n", "\n")
            if settings.auth_jwt_public_key
            else None
        )
        if self.secret is None and self.public_key is None:
            raise RuntimeError("Set AUTH_JWT_SECRET (HS256) or AUTH_JWT_PUBLIC_KEY (RS256)")
        self.audience = settings.auth_jwt_audience
        self.issuer = settings.auth_jwt_issuer
        self.max_ttl_seconds = settings.auth_max_token_ttl_seconds
        self._verified: dict[str, tuple[str, float]] = {}

    def _key_for(self, token: str) -> tuple[str, str]:
        """The algorithm and key to check `token` with: one per token, never the token's
        choice of algorithm with another algorithm's key."""
        if self.public_key is None:
            assert self.secret is not None
            return "HS256", self.secret
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise UnauthorizedError("The bearer token is invalid") from exc
        if self.secret is not None and header.get("kid") == LOGIN_KEY_ID:
            return "HS256", self.secret
        return "RS256", self.public_key

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
        algorithm, key = self._key_for(token)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
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
    key_id: str | None = None,
) -> str:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + ttl}
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    headers = {"kid": key_id} if key_id else None
    if private_key is not None:
        return jwt.encode(claims, private_key, algorithm="RS256", headers=headers)
    if secret is None:
        raise ValueError("a secret or a private key is needed")
    return jwt.encode(claims, secret, algorithm="HS256", headers=headers)


# Two schemes on the same header, so the OpenAPI document shows both forms a client may send.
_bearer_jwt = HTTPBearer(
    auto_error=False,
    scheme_name="bearerJwt",
    bearerFormat="JWT",
    description="A login token (`POST /api/auth/login`) or an identity provider's JWT; `sub` "
    "is the user id. It may use every route.",
)
_bearer_api_key = HTTPBearer(
    auto_error=False,
    scheme_name="bearerApiKey",
    bearerFormat="omni_...",
    description="An API key (`POST /api/marketplace/api-keys`), acting as its user on the "
    "routes its scopes allow (403 `insufficient_scope` elsewhere).",
)


class InsufficientScope(ForbiddenError):
    code = "insufficient_scope"

    def __init__(self, scope: str) -> None:
        super().__init__(
            f"This API key lacks the scope {scope!r} that this route needs",
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
            scope=scope,
        )


class ApiKeyNotAllowed(ForbiddenError):
    code = "api_key_not_allowed"

    def __init__(self) -> None:
        super().__init__(
            "This route does not accept API keys; use a login or identity-provider token"
        )


async def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_jwt)],
    _key_form: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_api_key)],
) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise UnauthorizedError("Missing bearer token")
    token = credentials.credentials
    if token.startswith(API_KEY_PREFIX):
        return await _api_key_user(request, token)
    verifier: TokenVerifier = request.app.state.token_verifier
    return verifier.subject(token)


async def _api_key_user(request: Request, key: str) -> str:
    principal = await authenticate_api_key(request.app.state.sessionmaker, key)
    if principal is None:
        raise UnauthorizedError("The API key is invalid or has been revoked")
    # The route as declared (`/orders/{orderId}`), never the raw path.
    route = request.scope.get("route")
    needed = required_scope(request.method, getattr(route, "path", ""))
    if needed is None:
        raise ApiKeyNotAllowed()
    if needed not in principal.scopes:
        raise InsufficientScope(needed)
    return principal.user_id


CurrentUser = Annotated[str, Depends(current_user)]


def ensure_same_user(token_user: str, requested_user: str | None) -> str:
    """The user a request acts for: the token's subject, which any named userId must equal."""
    if requested_user is not None and requested_user != token_user:
        raise ForbiddenError("The token does not belong to this userId")
    return token_user
