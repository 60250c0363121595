"""Messenger Send API: `POST /{page-id}/messages` with the Page token (same auth, transport,
error table and rate-limit handling as the Graph client in client.py).

A private reply (`recipient: {comment_id}`) answers one comment once; a message to a PSID is
a standard `RESPONSE` inside the 24 hours after the buyer last wrote, else it needs a tag
(`POST_PURCHASE_UPDATE`: an update on a purchase the buyer made)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from app.config import ClientTuning
from app.platforms.errors import ReauthRequiredError
from app.platforms.facebook.auth import GraphAuth
from app.platforms.facebook.mapping import classify_response, usage_retry_after
from app.platforms.http import PlatformTransport, RateLimiter
from app.platforms.types import Credentials, PlatformCode

POST_PURCHASE_UPDATE = "POST_PURCHASE_UPDATE"


@dataclass(frozen=True, slots=True)
class SentMessage:
    recipient_id: str | None  # the buyer's PSID (a private reply's answer names it)
    message_id: str | None


class MessengerClient:
    def __init__(
        self,
        credentials: Credentials,
        *,
        base_url: str,
        tuning: ClientTuning,
        http_client: httpx.AsyncClient | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.credentials = credentials
        self.base_url = base_url.rstrip("/")
        self.transport = PlatformTransport(
            platform=PlatformCode.FACEBOOK.value,
            tuning=tuning,
            http_client=http_client,
            limiter=limiter,
        )

    def _classify(self, response: httpx.Response) -> dict[str, Any]:
        payload = classify_response(response)
        wait = usage_retry_after(response.headers)
        if wait:
            self.transport.limiter.pause(wait)
        return payload

    async def send_message(
        self,
        *,
        text: str,
        comment_id: str | None = None,
        psid: str | None = None,
        tag: str | None = None,
    ) -> SentMessage:
        """Send `text` as a private reply to `comment_id`, or to `psid` (with `tag` outside
        the 24-hour window)."""
        expires = self.credentials.access_expires_at
        if expires is not None and expires <= datetime.now(UTC):
            raise ReauthRequiredError(
                "The Meta access token has expired; re-authorize the connection.",
                platform=PlatformCode.FACEBOOK.value,
                code="190/463",
            )
        if (comment_id is None) == (psid is None):
            raise ValueError("a message goes to exactly one of comment_id and psid")
        body: dict[str, Any] = {
            "recipient": {"comment_id": comment_id} if comment_id else {"id": psid},
            "message": {"text": text},
            "messaging_type": "MESSAGE_TAG" if tag else "RESPONSE",
        }
        if tag:
            body["tag"] = tag
        payload = await self.transport.request(
            "POST",
            f"{self.base_url}/{self.credentials.shop_id}/messages",
            classify=self._classify,
            json_body=body,
            auth=GraphAuth(self.credentials.access_token, self.credentials.api_secret),
        )
        recipient, message = payload.get("recipient_id"), payload.get("message_id")
        return SentMessage(
            str(recipient) if recipient is not None else None,
            str(message) if message is not None else None,
        )

    async def aclose(self) -> None:
        await self.transport.aclose()
