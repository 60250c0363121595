"""Connect a shop through the marketplace's own authorization page (no token pasted)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse

from app.auth import CurrentUser, ensure_same_user
from app.authorize import service
from app.authorize.schemas import ConnectStart, ConnectStartOut
from app.deps import CipherDep, GatewayDep
from app.schemas import DataResponse, error_responses
from app.uow import UowDep

PlatformPath = Annotated[str, Path(alias="platformCode", max_length=32)]

router = APIRouter(prefix="/api/marketplace/connect", tags=["connect"])


@router.post(
    "/{platformCode}/start",
    response_model=DataResponse[ConnectStartOut],
    responses=error_responses(401, 403, 422, 503),
)
async def start_connect(
    platform_code: PlatformPath,
    body: ConnectStart,
    request: Request,
    uow: UowDep,
    user: CurrentUser,
    gateway: GatewayDep,
) -> DataResponse[ConnectStartOut]:
    """Where to send the seller's browser to approve the operator's app on the marketplace.
    The answer's `state` works once, for 10 minutes; the marketplace sends the browser back to
    the callback, which connects the shop and redirects to `redirectUrl`."""
    owner = ensure_same_user(user, body.user_id)
    started = await service.start(
        uow,
        platform_code,
        owner,
        body.redirect_url,
        base_url=str(request.base_url),
        gateway=gateway,
    )
    return DataResponse(
        data=ConnectStartOut(authorization_url=started.authorization_url, state=started.state)
    )


@router.get(
    "/{platformCode}/callback",
    status_code=302,
    response_class=RedirectResponse,
    responses={
        302: {"description": "To the redirect URL with `connectionId=` or `error=`"},
        **error_responses(400, 503),
    },
)
async def connect_callback(
    platform_code: PlatformPath,
    request: Request,
    uow: UowDep,
    cipher: CipherDep,
    gateway: GatewayDep,
) -> RedirectResponse:
    """Where the marketplace sends the seller back (Shopee `code` and `shop_id`, Lazada and
    Meta `code`, and `state`). No bearer token: the signed `state` names the user. Redirects
    with `error=invalid_state`, `consent_refused` or `exchange_failed` when it cannot connect;
    400 `invalid_state` when the state is bad and no CONNECT_REDIRECT_URL is set."""
    location = await service.callback(
        uow, platform_code, request.query_params, cipher=cipher, gateway=gateway
    )
    return RedirectResponse(location, status_code=302)
