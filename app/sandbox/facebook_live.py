"""The Meta sandbox's live selling: a live video taking comments from many buyers (each sent
to the service as a signed Page `feed` webhook), Messenger messages and `send_cart` events,
and the Send API (`POST /{page-id}/messages`) with private replies and the 24-hour window.
What each buyer received is shown per buyer.

A commenter's id doubles as their PSID here (Meta gives a private reply's answer the PSID);
a private reply works once per comment, a standard message only within 24 hours of the
buyer's last message, a tagged one (`POST_PURCHASE_UPDATE`) at any time."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from app.platforms.facebook.auth import hub_signature_256
from app.sandbox.facebook import FacebookSandbox, SandboxPage

WINDOW_SECONDS = 24 * 3600
ALLOWED_TAGS = frozenset({"POST_PURCHASE_UPDATE", "CONFIRMED_EVENT_UPDATE", "ACCOUNT_UPDATE"})


@dataclass
class SandboxComment:
    comment_id: str
    page_id: str
    post_id: str
    buyer_id: str
    buyer_name: str
    message: str
    created_time: int


@dataclass
class FacebookLiveSandbox:
    facebook: FacebookSandbox
    comments: dict[str, SandboxComment] = field(default_factory=dict)
    replied: set[str] = field(default_factory=set)
    # (page id, psid) -> when the buyer last wrote to the Page
    windows: dict[tuple[str, str], float] = field(default_factory=dict)
    # (page id, psid) -> messages the Page sent them
    inbox: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def next_id(self) -> int:
        return next(self._ids)

    def page(self, shop_id: Any) -> SandboxPage:
        page = self.facebook.pages.get(str(shop_id))
        if page is None:
            raise KeyError("shopId")
        return page

    def new_comment(
        self,
        page: SandboxPage,
        post_id: str,
        message: str,
        *,
        buyer_id: str | None = None,
        buyer_name: str | None = None,
        created_time: int | None = None,
        comment_id: str | None = None,
    ) -> SandboxComment:
        number = self.next_id()
        comment = SandboxComment(
            comment_id=comment_id or f"{post_id}_{number:09d}",
            page_id=page.page_id,
            post_id=post_id,
            buyer_id=buyer_id or f"71{number:011d}",
            buyer_name=buyer_name or f"ลูกค้า {number}",
            message=message,
            created_time=created_time if created_time is not None else int(time.time()),
        )
        self.comments[comment.comment_id] = comment
        return comment

    def received(self, page_id: str, psid: str) -> list[dict[str, Any]]:
        return self.inbox.get((page_id, psid), [])


def comment_payload(comment: SandboxComment, verb: str = "add") -> dict[str, Any]:
    """A Page `feed` change for a comment (reference §6)."""
    value: dict[str, Any] = {
        "item": "comment",
        "verb": verb,
        "comment_id": comment.comment_id,
        "post_id": comment.post_id,
        "parent_id": comment.post_id,
        "from": {"id": comment.buyer_id, "name": comment.buyer_name},
        "created_time": comment.created_time,
    }
    if verb != "remove":
        value["message"] = comment.message
    entry_time = int(time.time()) if verb != "add" else comment.created_time
    return {
        "object": "page",
        "entry": [
            {
                "id": comment.page_id,
                "time": entry_time,
                "changes": [{"field": "feed", "value": value}],
            }
        ],
    }


def messaging_payload(page_id: str, psid: str, event: dict[str, Any]) -> dict[str, Any]:
    now_ms = int(time.time() * 1000)
    return {
        "object": "page",
        "entry": [
            {
                "id": page_id,
                "time": now_ms,
                "messaging": [
                    {
                        "sender": {"id": psid},
                        "recipient": {"id": page_id},
                        "timestamp": now_ms,
                        **event,
                    }
                ],
            }
        ],
    }


def signed(page: SandboxPage, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return raw, {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": hub_signature_256(page.app_secret, raw),
    }


def _error(message: str, code: int, subcode: int | None = None, status: int = 400) -> Response:
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": secrets.token_hex(6),
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return JSONResponse({"error": error}, status_code=status)


def _control_error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class LiveApp:
    def __init__(self, state: FacebookLiveSandbox) -> None:
        self.state = state

    async def _deliver(self, url: str, page: SandboxPage, payload: dict[str, Any]) -> int:
        raw, headers = signed(page, payload)
        client = self.state.facebook.webhook_client
        if client is not None:
            return (await client.post(url, content=raw, headers=headers)).status_code
        async with httpx.AsyncClient(timeout=10) as own:
            return (await own.post(url, content=raw, headers=headers)).status_code

    @staticmethod
    async def _body(request: Request) -> dict[str, Any]:
        body = await request.json()
        return body if isinstance(body, dict) else {}

    async def start_video(self, request: Request) -> Response:
        """A live video on the Page: its post id takes comments."""
        body = await self._body(request)
        try:
            page = self.state.page(body["shopId"])
        except KeyError:
            return _control_error("unknown or missing shopId")
        return JSONResponse({"postId": f"{page.page_id}_{9_000_000 + self.state.next_id()}"})

    async def comments(self, request: Request) -> Response:
        """Post comments (each its own signed webhook, in parallel up to `concurrency`):
        `comments: [{message, buyerId?, buyerName?, createdTime?, commentId?, verb?}]`."""
        body = await self._body(request)
        try:
            page = self.state.page(body["shopId"])
            post_id, url = str(body["postId"]), str(body["url"])
        except KeyError as exc:
            return _control_error(f"missing {exc}")
        specs = [c for c in body.get("comments") or [] if isinstance(c, dict)]
        results = await self._post(page, post_id, url, specs, int(body.get("concurrency") or 8))
        return JSONResponse({"comments": results})

    async def _post(
        self,
        page: SandboxPage,
        post_id: str,
        url: str,
        specs: list[dict[str, Any]],
        concurrency: int,
    ) -> list[dict[str, Any]]:
        limit = asyncio.Semaphore(max(1, min(64, concurrency)))

        async def post(spec: dict[str, Any]) -> dict[str, Any]:
            verb = str(spec.get("verb") or "add")
            known = self.state.comments.get(str(spec.get("commentId") or ""))
            if known is not None and verb != "add":
                if "message" in spec:
                    known.message = str(spec["message"])
                comment = known
            else:
                comment = self.state.new_comment(
                    page,
                    post_id,
                    str(spec.get("message", "")),
                    buyer_id=spec.get("buyerId"),
                    buyer_name=spec.get("buyerName"),
                    created_time=spec.get("createdTime"),
                    comment_id=spec.get("commentId"),
                )
            async with limit:
                try:
                    status = await self._deliver(url, page, comment_payload(comment, verb))
                except httpx.HTTPError as exc:
                    return {"commentId": comment.comment_id, "error": type(exc).__name__}
            return {"commentId": comment.comment_id, "buyerId": comment.buyer_id, "status": status}

        return list(await asyncio.gather(*(post(spec) for spec in specs)))

    async def burst(self, request: Request) -> Response:
        """A scripted live: `count` comments from `buyers` buyers over `codes`, each
        "CF <code>" (every 7th a chat line that is not an order)."""
        body = await self._body(request)
        try:
            page = self.state.page(body["shopId"])
            post_id, url = str(body["postId"]), str(body["url"])
        except KeyError as exc:
            return _control_error(f"missing {exc}")
        buyers = max(1, int(body.get("buyers") or 10))
        codes = [str(c) for c in body.get("codes") or ["A1"]]
        count = max(0, min(10_000, int(body.get("count") or 20)))
        specs = []
        for n in range(count):
            buyer = n % buyers
            message = "สวัสดีค่ะ" if n % 7 == 6 else f"CF {codes[n % len(codes)]}"
            specs.append(
                {"message": message, "buyerId": f"72{buyer:011d}", "buyerName": f"ผู้ชม {buyer}"}
            )
        results = await self._post(page, post_id, url, specs, int(body.get("concurrency") or 8))
        return JSONResponse({"comments": results})

    async def message(self, request: Request) -> Response:
        """The buyer writes to the Page (opens the 24-hour window)."""
        body = await self._body(request)
        try:
            page = self.state.page(body["shopId"])
            psid, url = str(body["psid"]), str(body["url"])
        except KeyError as exc:
            return _control_error(f"missing {exc}")
        self.state.windows[(page.page_id, psid)] = time.time()
        event = {"message": {"mid": f"m_{secrets.token_hex(8)}", "text": body.get("text", "")}}
        status = await self._deliver(url, page, messaging_payload(page.page_id, psid, event))
        return JSONResponse({"status": status})

    async def cart(self, request: Request) -> Response:
        """A `send_cart` from Messenger: `products: [{retailerId, quantity, unitPrice,
        currency?, name?}]`, `note?`."""
        body = await self._body(request)
        try:
            page = self.state.page(body["shopId"])
            psid, url = str(body["psid"]), str(body["url"])
        except KeyError as exc:
            return _control_error(f"missing {exc}")
        products = [
            {
                "id": str(p.get("id") or 500_000 + index),
                "retailer_id": str(p["retailerId"]),
                "name": str(p.get("name") or p["retailerId"]),
                "unit_price": p.get("unitPrice", 0),
                "currency": p.get("currency", "THB"),
                "quantity": int(p.get("quantity") or 1),
            }
            for index, p in enumerate(body.get("products") or [])
            if isinstance(p, dict) and p.get("retailerId")
        ]
        self.state.windows[(page.page_id, psid)] = time.time()
        event = {"order": {"products": products, "note": body.get("note", "")}}
        status = await self._deliver(url, page, messaging_payload(page.page_id, psid, event))
        return JSONResponse({"status": status, "products": products})

    async def inbox(self, request: Request) -> Response:
        """What buyers received: `?shopId=` (and `buyerId=` for one buyer)."""
        try:
            page = self.state.page(request.query_params["shopId"])
        except KeyError:
            return _control_error("unknown or missing shopId")
        buyer = request.query_params.get("buyerId")
        return JSONResponse(
            {
                "buyers": {
                    psid: messages
                    for (page_id, psid), messages in self.state.inbox.items()
                    if page_id == page.page_id and (buyer is None or psid == buyer)
                }
            }
        )

    # --- the Send API ---------------------------------------------------------------------

    def _token_page(self, request: Request) -> SandboxPage | Response:
        header = request.headers.get("authorization", "")
        value = header[7:].strip() if header.lower().startswith("bearer ") else None
        value = value or request.query_params.get("access_token")
        token = self.state.facebook.tokens.get(value or "")
        if token is None:
            return _error("Invalid OAuth access token - Cannot parse access token", 190)
        if token.expires_at <= time.time():
            return _error("Error validating access token: Session has expired.", 190, 463)
        page = self.state.facebook.pages[token.page_id]
        if self.state.facebook.require_appsecret_proof:
            proof = request.query_params.get("appsecret_proof", "")
            expected = hmac.new(
                page.app_secret.encode(), token.value.encode(), hashlib.sha256
            ).hexdigest()
            if not hmac.compare_digest(proof.encode(), expected.encode()):
                return _error("Invalid appsecret_proof provided in the API argument", 100)
        return page

    async def send(self, request: Request) -> Response:
        page = self._token_page(request)
        if isinstance(page, Response):
            return page
        if request.path_params["page_id"] != page.page_id:
            return _error("(#200) The page does not match the token", 200)
        self.state.facebook.post_paths.append(f"{page.page_id}/messages")
        try:
            body = json.loads(await request.body())
            recipient = body["recipient"]
            text = str(body["message"]["text"])
        except (ValueError, KeyError, TypeError):
            return _error("(#100) recipient and message.text are required", 100)
        now = time.time()
        messaging_type = str(body.get("messaging_type") or "RESPONSE")
        if isinstance(recipient, dict) and recipient.get("comment_id"):
            comment = self.state.comments.get(str(recipient["comment_id"]))
            if comment is None or comment.page_id != page.page_id:
                return _error("(#100) No matching comment", 100, 2018001)
            if comment.comment_id in self.state.replied:
                return _error("(#10) This comment already has a private reply", 10, 2018108)
            self.state.replied.add(comment.comment_id)
            psid, via = comment.buyer_id, "private_reply"
        elif isinstance(recipient, dict) and recipient.get("id"):
            psid, via = str(recipient["id"]), "message"
            if messaging_type == "MESSAGE_TAG":
                if body.get("tag") not in ALLOWED_TAGS:
                    return _error("(#100) Param tag must be a valid message tag", 100)
            else:
                opened = self.state.windows.get((page.page_id, psid))
                if opened is None or now - opened > WINDOW_SECONDS:
                    return _error(
                        "(#10) This message is sent outside of allowed window.", 10, 2018278
                    )
        else:
            return _error("(#100) recipient must have id or comment_id", 100)
        self.state.inbox.setdefault((page.page_id, psid), []).append(
            {
                "via": via,
                "text": text,
                "messagingType": messaging_type,
                "tag": body.get("tag"),
                "at": now,
            }
        )
        return JSONResponse({"recipient_id": psid, "message_id": f"m_{secrets.token_hex(10)}"})


def routes(state: FacebookLiveSandbox) -> list[BaseRoute]:
    """Mounted before the Graph sandbox's catch-all route (Starlette tries routes in order)."""
    app = LiveApp(state)
    return [
        Route("/facebook/_sandbox/live/videos", app.start_video, methods=["POST"]),
        Route("/facebook/_sandbox/live/comments", app.comments, methods=["POST"]),
        Route("/facebook/_sandbox/live/burst", app.burst, methods=["POST"]),
        Route("/facebook/_sandbox/live/messages", app.message, methods=["POST"]),
        Route("/facebook/_sandbox/live/carts", app.cart, methods=["POST"]),
        Route("/facebook/_sandbox/live/inbox", app.inbox, methods=["GET"]),
        Route("/facebook/{version}/{page_id}/messages", app.send, methods=["POST"]),
    ]
