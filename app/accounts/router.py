from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status

from app.accounts import service
from app.accounts.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    LoginRequest,
    RefreshRequest,
    TokenPairOut,
)
from app.auth import CurrentUser, ensure_same_user
from app.deps import RedisDep, SettingsDep
from app.models.api_key import ApiKey
from app.schemas import DataResponse, error_responses
from app.uow import UowDep

auth_router = APIRouter(prefix="/api/auth", tags=["accounts"])
keys_router = APIRouter(prefix="/api/marketplace", tags=["accounts"])

UserIdQuery = Annotated[
    str | None,
    Query(alias="userId", max_length=128, description="Must equal the token's subject"),
]


def _pair_out(pair: service.TokenPair) -> DataResponse[TokenPairOut]:
    return DataResponse(
        data=TokenPairOut(
            user_id=pair.user_id,
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            expires_in=pair.expires_in,
        )
    )


@auth_router.post(
    "/login",
    response_model=DataResponse[TokenPairOut],
    responses=error_responses(401, 422, 429, 503),
)
async def login(
    body: LoginRequest, request: Request, uow: UowDep, redis: RedisDep, settings: SettingsDep
) -> DataResponse[TokenPairOut]:
    """An access token (the JWT every route accepts, `sub` = the user id) and a refresh token.
    A wrong e-mail or password is 401 `invalid_credentials` (the same answer for both); after
    AUTH_LOGIN_MAX_FAILURES failures within AUTH_LOGIN_WINDOW_SECONDS for the e-mail or for
    the client address, 429 with `Retry-After`."""
    address = request.client.host if request.client else "unknown"
    pair = await service.login(uow.session, redis, settings, body.email, body.password, address)
    await uow.commit()
    return _pair_out(pair)


@auth_router.post(
    "/refresh",
    response_model=DataResponse[TokenPairOut],
    responses=error_responses(401, 422, 503),
)
async def refresh(
    body: RefreshRequest, uow: UowDep, settings: SettingsDep
) -> DataResponse[TokenPairOut]:
    """A new pair for a refresh token, which is then used up. A used one presented again
    revokes every token of its login (401): someone else holds a copy."""
    try:
        pair = await service.refresh(uow.session, settings, body.refresh_token)
    except service.RefreshTokenReused:
        await uow.commit()
        raise
    await uow.commit()
    return _pair_out(pair)


@auth_router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(422, 503),
)
async def logout(body: RefreshRequest, uow: UowDep) -> Response:
    """Revokes the refresh token and every other of its login. Access tokens already issued
    run out on their own (AUTH_ACCESS_TOKEN_TTL_SECONDS)."""
    await service.logout(uow.session, body.refresh_token)
    await uow.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _key_out(row: ApiKey) -> ApiKeyOut:
    return ApiKeyOut.model_validate(row)


@keys_router.post(
    "/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=DataResponse[ApiKeyCreated],
    responses=error_responses(401, 403, 422, 503),
)
async def create_api_key(
    body: ApiKeyCreate, uow: UowDep, user: CurrentUser
) -> DataResponse[ApiKeyCreated]:
    """A key for an integrator, acting as the user within `scopes`. The key is in this answer
    only; it is stored hashed. Needs a login or identity-provider token (not an API key)."""
    owner = ensure_same_user(user, body.user_id)
    created = await service.create_api_key(uow.session, owner, body.name, body.scopes)
    await uow.commit()
    out = _key_out(created.row)
    return DataResponse(data=ApiKeyCreated(**out.model_dump(), key=created.key))


@keys_router.get(
    "/api-keys",
    response_model=DataResponse[list[ApiKeyOut]],
    responses=error_responses(401, 403, 422, 503),
)
async def list_api_keys(
    uow: UowDep, user: CurrentUser, user_id: UserIdQuery = None
) -> DataResponse[list[ApiKeyOut]]:
    """The user's active keys, by name and last 4 characters. Needs a login or
    identity-provider token (not an API key)."""
    owner = ensure_same_user(user, user_id)
    return DataResponse(
        data=[_key_out(row) for row in await service.list_api_keys(uow.session, owner)]
    )


@keys_router.delete(
    "/api-keys/{apiKeyId}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(401, 403, 404, 422, 503),
)
async def revoke_api_key(
    key_id: Annotated[uuid.UUID, Path(alias="apiKeyId")],
    uow: UowDep,
    user: CurrentUser,
    user_id: UserIdQuery = None,
) -> Response:
    """Revokes the key at once: requests with it are 401 from then on. Needs a login or
    identity-provider token (not an API key)."""
    owner = ensure_same_user(user, user_id)
    await service.revoke_api_key(uow.session, owner, key_id)
    await uow.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
