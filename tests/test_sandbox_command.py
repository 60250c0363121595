"""`omni-sales sandbox`: three demo shops that the service can connect to and sync."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from app.sandbox.app import create_sandbox_app, describe_demo
from tests.conftest import auth_headers, make_settings, running_app


@pytest.mark.usefixtures("clean")
async def test_demo_shops_connect_with_the_printed_credentials(
    database_url: str, redis_url: str
) -> None:
    root = "http://sandbox.test"
    app, demo = create_sandbox_app(public_base_url=root)
    text = describe_demo(demo)
    assert "SHOPEE_BASE_URL=http://sandbox.test/shopee" in text
    settings_values: dict[str, Any] = demo["settings"]  # type: ignore[assignment]
    settings = make_settings(database_url, redis_url, **settings_values)
    platform_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    async with running_app(settings, platform_http=platform_http) as api:
        for platform in ("shopee", "lazada", "facebook"):
            credentials: dict[str, str] = demo[platform]  # type: ignore[assignment]
            assert credentials["accessToken"] in text  # printed for the demo user to paste
            body = {"userId": "demo", "platformCode": platform}
            body |= {
                k: v
                for k, v in credentials.items()
                if k in ("shopId", "apiKey", "apiSecret", "accessToken", "refreshToken")
            }
            response = await api.post(
                "/api/marketplace/connections", json=body, headers=auth_headers("demo")
            )
            assert response.status_code == 201, (platform, response.text)
            assert response.json()["data"]["shopName"]
    await platform_http.aclose()


@pytest.mark.usefixtures("clean")
async def test_demo_shops_connect_through_their_pages_with_only_the_printed_settings(
    database_url: str, redis_url: str
) -> None:
    root = "http://sandbox.test"
    app, demo = create_sandbox_app(public_base_url=root, service_url="http://omni.test")
    text = describe_demo(demo)
    printed = dict(re.findall(r"export (\w+)=(\S+)", text))
    for name in ("SHOPEE_PARTNER_ID", "LAZADA_OAUTH_URL", "FACEBOOK_DIALOG_URL"):
        assert name in printed
    assert printed["PUBLIC_BASE_URL"] == "http://omni.test"
    # Only what was printed (no CONNECT_REDIRECT_URL: the callback shows the grant).
    settings = make_settings(database_url, redis_url, **printed)
    platform_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    headers = auth_headers("demo")
    async with running_app(settings, platform_http=platform_http) as api:
        for platform in ("shopee", "lazada", "facebook"):
            started = await api.post(
                f"/api/marketplace/connect/{platform}/start",
                json={"userId": "demo"},
                headers=headers,
            )
            assert started.status_code == 200, (platform, started.text)
            page = await platform_http.get(started.json()["data"]["authorizationUrl"])
            assert page.status_code == 302, (platform, page.text)
            back = urlsplit(page.headers["location"])
            shown = await api.get(f"{back.path}?{back.query}")
            assert shown.status_code == 200, (platform, shown.text)
            [grant] = re.findall(r'"grant": "([\w-]+)"', shown.text)
            done = await api.post(
                "/api/marketplace/connect/complete",
                json={"userId": "demo", "grant": grant},
                headers=headers,
            )
            assert done.status_code == 201, (platform, done.text)
            [connection] = done.json()["data"]
            assert connection["shopId"] == demo[platform]["shopId"]  # type: ignore[index]
    await platform_http.aclose()
