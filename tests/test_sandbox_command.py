"""`omni-sales sandbox`: three demo shops that the service can connect to and sync."""

from __future__ import annotations

from typing import Any

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
