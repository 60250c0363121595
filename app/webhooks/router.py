"""Marketplace pushes: verified, stored once, processed by the worker."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse
from fastapi.routing import APIRoute
from starlette.types import Receive, Scope, Send

from app.auth import CurrentUser, ensure_same_user
from app.errors import ForbiddenError
from app.platforms.facebook.webhooks import verify_handshake
from app.platforms.types import PlatformCode
from app.schemas import error_responses
from app.uow import UowDep
from app.webhooks import service
from app.webhooks.intake import PUSH_PATHS, PUSH_URL, PushIntake, route_path
from app.webhooks.schemas import (
    WebhookEventPage,
    WebhookEventResponse,
    WebhookPagination,
    WebhookStatus,
)

router = APIRouter(tags=["webhooks"])

_ACCEPTED: dict[int | str, dict[str, Any]] = {
    200: {"description": "Verified and stored (or a duplicate); empty body"}
}
_CHALLENGE: dict[int | str, dict[str, Any]] = {
    200: {"description": "The `hub.challenge` value", "content": {"text/plain": {}}},
}


def _handshake(request: Request) -> PlainTextResponse:
    expected = request.app.state.settings.meta_webhook_verify_token
    params = request.query_params
    challenge = verify_handshake(
        params.get("hub.mode"),
        params.get("hub.verify_token"),
        params.get("hub.challenge"),
        expected.get_secret_value() if expected is not None else None,
    )
    if challenge is None:
        raise ForbiddenError("The verify token does not match META_WEBHOOK_VERIFY_TOKEN")
    return PlainTextResponse(challenge)


PlatformPath = Annotated[PlatformCode, Path(alias="platformCode")]


class PushRoute(APIRoute):
    """Documented like any route; its POSTs go straight to `PushIntake`, past FastAPI's
    per-request machinery. Anything else (another method, a platform that does not exist)
    gets FastAPI's own answer (405, 422)."""

    intake = PushIntake()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "POST" and route_path(scope) in PUSH_PATHS:
            await self.intake(scope, receive, send)
        else:
            await super().handle(scope, receive, send)


def _served_by_intake() -> Response:
    raise AssertionError("PushRoute hands these requests to PushIntake")


async def receive_push() -> Response:
    """A Shopee, Lazada or Meta push, told apart by its headers and body. Answers at once;
    the worker does the rest."""
    return _served_by_intake()


async def receive_platform_push(platform: PlatformPath) -> Response:
    """A push of the platform named in the path."""
    return _served_by_intake()


router.add_api_route(
    PUSH_URL,
    receive_push,
    methods=["POST"],
    response_class=Response,
    responses={**_ACCEPTED, **error_responses(400, 401, 413)},
    route_class_override=PushRoute,
)
router.add_api_route(
    PUSH_URL + "/{platformCode}",
    receive_platform_push,
    methods=["POST"],
    response_class=Response,
    responses={**_ACCEPTED, **error_responses(400, 401, 413, 422)},
    route_class_override=PushRoute,
)


@router.get(
    PUSH_URL, response_class=PlainTextResponse, responses={**_CHALLENGE, **error_responses(403)}
)
async def meta_handshake(request: Request) -> PlainTextResponse:
    """Meta's subscription check: echoes `hub.challenge` when `hub.verify_token` matches."""
    return _handshake(request)


@router.get(
    PUSH_URL + "/{platformCode}",
    response_class=PlainTextResponse,
    responses={**_CHALLENGE, **error_responses(403, 422)},
)
async def meta_platform_handshake(request: Request, platform: PlatformPath) -> PlainTextResponse:
    """Meta's subscription check on the per-platform URL."""
    return _handshake(request)


@router.get(
    "/api/marketplace/webhooks",
    response_model=WebhookEventPage,
    responses=error_responses(401, 403, 422),
)
async def list_webhook_events(
    uow: UowDep,
    user: CurrentUser,
    user_id: Annotated[str | None, Query(alias="userId", max_length=128)] = None,
    connection_id: Annotated[uuid.UUID | None, Query(alias="connectionId")] = None,
    status: WebhookStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None,
        Query(max_length=256, description="nextCursor of the previous page"),
    ] = None,
) -> WebhookEventPage:
    """Received pushes of the user's connections and what became of them, newest first."""
    owner = ensure_same_user(user, user_id)
    events, next_cursor = await service.list_events(
        uow.session,
        owner,
        connection_id=connection_id,
        status=status,
        limit=limit,
        cursor=cursor,
    )
    return WebhookEventPage(
        data=events, pagination=WebhookPagination(limit=limit, next_cursor=next_cursor)
    )


@router.post(
    "/api/marketplace/webhooks/{webhookId}/retry",
    response_model=WebhookEventResponse,
    responses=error_responses(401, 403, 404, 409, 422, 503),
)
async def retry_webhook_event(
    uow: UowDep,
    user: CurrentUser,
    webhook_id: Annotated[int, Path(alias="webhookId", ge=1, le=2**63 - 1)],
    user_id: Annotated[str | None, Query(alias="userId", max_length=128)] = None,
) -> WebhookEventResponse:
    """Process a failed event again (404 for another user's, 409 unless it failed)."""
    owner = ensure_same_user(user, user_id)
    event = await service.retry_event(uow.session, owner, webhook_id)
    return WebhookEventResponse(data=event)
