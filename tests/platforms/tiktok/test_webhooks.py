"""TikTok Shop push shapes: which events name orders, their identity, and the shared path."""

from __future__ import annotations

import json

from app.platforms.tiktok.webhooks import PARSER
from app.platforms.types import PlatformCode
from app.platforms.webhooks import EventKind, detect_platform


def doc(push_type: int, **data: object) -> dict[str, object]:
    return {
        "type": push_type,
        "tts_notification_id": "7327112393057371910",
        "shop_id": "7494049642642441621",
        "timestamp": 1644412885,
        "data": data,
    }


def test_shared_path_recognizes_a_tiktok_body() -> None:
    assert detect_platform({}, doc(1, order_id="1")) is PlatformCode.TIKTOK


def test_order_status_and_cancellation_pushes_name_their_order() -> None:
    for push_type, event_type in ((1, "order_status_change"), (11, "cancellation_status_change")):
        document = doc(push_type, order_id="576486316948490001", update_time=1644412885)
        [event] = PARSER.parse(document, json.dumps(document).encode())
        assert (event.event_type, event.kind) == (event_type, EventKind.ORDER)
        assert event.order_ids == ("576486316948490001",)
        assert event.shop_id == "7494049642642441621"
        assert event.dedupe_key == f"{push_type}:7327112393057371910"
        assert event.changed_at is not None and int(event.changed_at.timestamp()) == 1644412885


def test_deauthorization_needs_reauthorization_and_others_name_no_order() -> None:
    [gone] = PARSER.parse(doc(6), b"")
    assert (gone.kind, gone.connection_status) == (EventKind.AUTHORIZATION, "reauth_required")
    [package] = PARSER.parse(doc(4, package_list=[]), b"")
    assert package.order_ids == () and package.kind is EventKind.OTHER
    [orderless] = PARSER.parse(doc(1), b"")
    assert orderless.kind is EventKind.OTHER
