"""A seller's reply template is plain placeholder substitution: only the documented names, a
422 naming anything else when the template is saved, and a message never longer than Messenger
takes; a template that cannot be rendered never stops another buyer's reply."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.live import replies
from app.live.templates import MAX_MESSAGE_CHARS, PLACEHOLDERS
from app.sandbox.facebook_live import FacebookLiveSandbox, comment_payload
from tests.conftest import RunningSandbox
from tests.live.helpers import HEADERS, USER, deliver, facebook_shop, open_live, set_stock

SKU = "LIVE-TPL"
FIELDS = {name: name.upper() for name in PLACEHOLDERS}


@pytest.fixture
async def shop(api: httpx.AsyncClient, sandbox: RunningSandbox) -> dict[str, Any]:
    connection, _ = await facebook_shop(api, sandbox)
    await set_stock(api, SKU, 10)
    return connection


def _create_body(connection: dict[str, Any], template: str) -> dict[str, Any]:
    return {
        "userId": USER,
        "connectionId": connection["id"],
        "postId": f"{connection['shopId']}_{uuid.uuid4().int % 10**12}",
        "products": [{"code": "C1", "sku": SKU, "price": "150"}],
        "replyTemplate": template,
    }


def _problem(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    body: dict[str, Any] = response.json()["error"]
    [problem] = [f for f in body["fields"] if f["field"] == "replyTemplate"]
    return problem


@pytest.mark.parametrize(
    ("template", "named"),
    [
        ("Hi {buyer}", "{buyer}"),
        ("{buyerName:>2000000}", "{buyerName:>2000000}"),
        ("{buyerName.__class__}", "{buyerName.__class__}"),
        ("{total!r} {orderNumber}", "{total!r}"),
        ("{0}", "{0}"),
    ],
)
async def test_an_unknown_placeholder_is_422_naming_it_on_create_and_patch(
    api: httpx.AsyncClient, shop: dict[str, Any], template: str, named: str
) -> None:
    created = await api.post(
        "/api/marketplace/live-sessions", json=_create_body(shop, template), headers=HEADERS
    )
    assert named in _problem(created)["message"]

    live = await open_live(api, shop, [{"code": "C1", "sku": SKU, "price": "150"}])
    patched = await api.patch(
        f"/api/marketplace/live-sessions/{live['id']}",
        json={"userId": USER, "replyTemplate": template},
        headers=HEADERS,
    )
    assert named in _problem(patched)["message"]
    read = await api.get(
        f"/api/marketplace/live-sessions/{live['id']}", params={"userId": USER}, headers=HEADERS
    )
    assert read.json()["data"]["replyTemplate"] is None


async def test_every_documented_placeholder_and_lone_braces_are_accepted(
    api: httpx.AsyncClient, shop: dict[str, Any]
) -> None:
    template = " ".join("{" + name + "}" for name in PLACEHOLDERS) + " :-{ }"
    created = await api.post(
        "/api/marketplace/live-sessions", json=_create_body(shop, template), headers=HEADERS
    )
    assert created.status_code == 201, created.text
    assert created.json()["data"]["replyTemplate"] == template


def test_only_documented_names_are_filled_and_nothing_is_evaluated() -> None:
    assert replies.render_message("{buyerName}/{total} {currency}", FIELDS) == (
        "BUYERNAME/TOTAL CURRENCY"
    )
    # A template stored before templates were checked: left as written, never padded.
    padded = replies.render_message("{buyerName:>2000000}", FIELDS)
    assert padded == "{buyerName:>2000000}"
    assert replies.render_message("{buyerName.__class__} {x} {", FIELDS) == (
        "{buyerName.__class__} {x} {"
    )
    # A value holding a placeholder is not substituted again.
    assert replies.render_message("{buyerName}", {**FIELDS, "buyerName": "{total}"}) == "{total}"


def test_a_message_is_cut_to_the_messenger_limit() -> None:
    long_lines = "\n".join(f"- ITEM{i} x1 = 150.00" for i in range(500))
    message = replies.render_message("{lines}", {**FIELDS, "lines": long_lines})
    assert len(message) == MAX_MESSAGE_CHARS == 2000
    assert message.endswith("…")


async def test_a_template_that_cannot_render_never_blocks_other_buyers(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    shop: dict[str, Any],
    session_factory: async_sessionmaker[AsyncSession],
    job_context: dict[str, Any],
) -> None:
    live = await open_live(api, shop, [{"code": "C1", "sku": SKU, "price": "150"}])
    # Saved before templates were checked: str.format_map raised AttributeError on it.
    async with session_factory() as session:
        await session.execute(
            text("UPDATE live_sessions SET reply_template = :t WHERE id = :id"),
            {"t": "{buyerName.missing} {total}", "id": live["id"]},
        )
        await session.commit()
    state: FacebookLiveSandbox = sandbox.sandboxes.facebook_live
    page = state.page(shop["shopId"])
    for buyer in ("buyer-1", "buyer-2"):
        comment = state.new_comment(page, live["postId"], "CF C1", buyer_id=buyer, buyer_name="N")
        await deliver(session_factory, shop, comment_payload(comment))

    sent = await replies.send_pending(job_context["app"], uuid.UUID(shop["id"]))

    assert sent == 2
    for buyer in ("buyer-1", "buyer-2"):
        [message] = state.received(shop["shopId"], buyer)
        assert message["text"] == "{buyerName.missing} 150.00"
    async with session_factory() as session:
        statuses = list(await session.scalars(text("SELECT status FROM social_replies")))
    assert statuses == ["sent", "sent"]
