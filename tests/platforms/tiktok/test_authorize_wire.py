"""TikTok Shop's authorization exchange on the wire: token get (unsigned, absolute expiry),
then one authorized shop per entry of `/authorization/{v}/shops`."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import respx

from app.config import Settings
from app.platforms.authorize import Callback, OperatorApp
from app.platforms.tiktok.authorize import TikTokConnectFlow
from tests.platforms.tiktok.test_wire import API, AUTH, envelope


def flow() -> TikTokConnectFlow:
    settings = Settings(
        TIKTOK_BASE_URL=API,
        TIKTOK_AUTH_URL=AUTH,
        TIKTOK_SERVICE_ID="7123",
        TIKTOK_VERSION_SHOPS="202401",
    )
    return TikTokConnectFlow(settings, OperatorApp("appkey1", "secret1"))


def test_authorization_url_names_the_service_and_state() -> None:
    url = flow().authorization_url(callback_url="https://omni.test/cb", state="s1")
    parts = urlsplit(url)
    assert parts.netloc == "services.tiktokshop.com" and parts.path == "/open/authorize"
    assert parse_qs(parts.query) == {
        "service_id": ["7123"],
        "state": ["s1"],
        "redirect_uri": ["https://omni.test/cb"],
    }


@respx.mock
async def test_exchange_gives_one_shop_per_authorized_shop() -> None:
    token = respx.get(f"{AUTH}/api/v2/token/get").respond(
        json=envelope(
            {
                "access_token": "a1",
                "access_token_expire_in": 1_900_000_000,
                "refresh_token": "r1",
                "refresh_token_expire_in": 1_950_000_000,
            }
        )
    )
    shops = respx.get(f"{API}/authorization/202401/shops").respond(
        json=envelope(
            {
                "shops": [
                    {"id": "7000000000000000001", "name": "A", "region": "TH", "cipher": "C1"},
                    {"id": "7000000000000000002", "name": "B", "region": "MY", "cipher": "C2"},
                ]
            }
        )
    )
    connect = flow()
    found = await connect.exchange(Callback(code="code-1"), callback_url="https://omni.test/cb")
    await connect.aclose()
    query = token.calls.last.request.url.params
    assert (query["auth_code"], query["grant_type"], query["app_secret"]) == (
        "code-1",
        "authorized_code",
        "secret1",
    )
    assert "sign" not in query
    assert shops.calls.last.request.headers["x-tts-access-token"] == "a1"
    assert [(s.credentials.shop_id, s.country) for s in found] == [
        ("7000000000000000001", "TH"),
        ("7000000000000000002", "MY"),
    ]
    assert found[0].credentials.access_expires_at == datetime.fromtimestamp(1_900_000_000, UTC)
    assert found[1].credentials.refresh_token == "r1"
