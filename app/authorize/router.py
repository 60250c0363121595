"""Connect a shop through the marketplace's own authorization page (no token pasted)."""

from __future__ import annotations

import html
import json
from typing import Annotated

from fastapi import APIRouter, Path, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.auth import CurrentUser, ensure_same_user
from app.authorize import service
from app.authorize.schemas import (
    ConnectComplete,
    ConnectCompleteOut,
    ConnectStart,
    ConnectStartOut,
    SkippedShopOut,
)
from app.connections.service import to_out
from app.deps import CipherDep, GatewayDep, SettingsDep
from app.errors import AppError
from app.schemas import DataResponse, error_responses
from app.uow import UowDep

PlatformPath = Annotated[str, Path(alias="platformCode", max_length=32)]

router = APIRouter(prefix="/api/marketplace/connect", tags=["connect"])

# The grant rides in these answers: no cache keeps it, no Referer carries it on.
_PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


@router.post(
    "/{platformCode}/start",
    response_model=DataResponse[ConnectStartOut],
    responses=error_responses(401, 403, 422, 503),
)
async def start_connect(
    platform_code: PlatformPath,
    body: ConnectStart,
    uow: UowDep,
    user: CurrentUser,
    gateway: GatewayDep,
) -> DataResponse[ConnectStartOut]:
    """Where to send the seller's browser to approve the operator's app on the marketplace.
    The answer's `state` works once, for 10 minutes; the marketplace sends the browser back to
    the callback, which redirects to `redirectUrl` with a `grant` to complete the flow with.
    422 `connect_flow_not_configured` names the missing settings (`missingSettings`)."""
    owner = ensure_same_user(user, body.user_id)
    started = await service.start(uow, platform_code, owner, body.redirect_url, gateway=gateway)
    return DataResponse(
        data=ConnectStartOut(authorization_url=started.authorization_url, state=started.state)
    )


@router.get(
    "/{platformCode}/callback",
    status_code=302,
    response_class=RedirectResponse,
    responses={
        302: {
            "description": "To the redirect URL with `grant=` and `platform=`, or `error=` "
            "(`invalid_state`, `consent_refused`, `exchange_failed`)"
        },
        200: {
            "description": "Without a redirect URL: a page showing the grant and the "
            "completion call",
            "content": {"text/html": {}},
        },
        **error_responses(400, 503),
    },
)
async def connect_callback(
    platform_code: PlatformPath,
    request: Request,
    uow: UowDep,
    cipher: CipherDep,
    gateway: GatewayDep,
) -> Response:
    """Where the marketplace sends the seller back (Shopee `code` and `shop_id`, Lazada and
    Meta `code`, and `state`). No bearer token: nothing is connected here. The code is
    exchanged once and kept as a grant (encrypted, single use, 10 minutes) for the user who
    started the flow to complete. Without CONNECT_REDIRECT_URL or a `redirectUrl`, a small
    page shows the grant, and a failure is 400 with its error code."""
    outcome = await service.callback(
        uow, platform_code, request.query_params, cipher=cipher, gateway=gateway
    )
    if outcome.location is not None:
        return RedirectResponse(outcome.location, status_code=302, headers=_PRIVATE)
    if outcome.grant is not None:
        return _completion_page(outcome.platform, outcome.grant)
    error = outcome.error or service.INVALID_STATE
    raise AppError(f"The connect flow did not finish: {error}", code=error)


@router.post(
    "/complete",
    status_code=status.HTTP_201_CREATED,
    response_model=ConnectCompleteOut,
    responses=error_responses(401, 403, 410, 422, 503),
)
async def complete_connect(
    body: ConnectComplete,
    uow: UowDep,
    user: CurrentUser,
    cipher: CipherDep,
    settings: SettingsDep,
) -> ConnectCompleteOut:
    """With the bearer token of the user who called start: the connections the grant holds
    (one per shop; a shop already connected to this user is updated, not doubled), each
    starting its first sync. Another user's token: 403 `grant_not_yours` and the grant is
    destroyed; a used, expired or unknown grant: 410 `grant_expired`."""
    owner = ensure_same_user(user, body.user_id)
    completed = await service.complete(uow, owner, body.grant, cipher=cipher, settings=settings)
    await uow.commit()
    return ConnectCompleteOut(
        data=[to_out(connection, cipher) for connection in completed.connections],
        skipped=[
            SkippedShopOut(shop_id=s.shop_id, country=s.country, message=s.message)
            for s in completed.skipped
        ],
    )


def _completion_page(platform: str, grant: str) -> HTMLResponse:
    call = json.dumps({"userId": "<your user id>", "grant": grant}, indent=2)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Finish connecting your shop</title></head>
<body>
<h1>Authorized on {html.escape(platform)}: one step left</h1>
<p>Nothing is connected yet. Within 10 minutes, as the user who started this flow, call:</p>
<pre>POST /api/marketplace/connect/complete
Authorization: Bearer &lt;your token&gt;
Content-Type: application/json

{html.escape(call, quote=False)}</pre>
<p>The grant works once. Set CONNECT_REDIRECT_URL to have your frontend do this.</p>
</body></html>
"""
    return HTMLResponse(
        page,
        headers={**_PRIVATE, "Content-Security-Policy": "default-src 'none'"},
    )
