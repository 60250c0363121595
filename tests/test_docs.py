"""The API docs work on a machine without internet: every asset they name is served by the
app itself."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import httpx
import pytest

_ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
_EXTERNAL = re.compile(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", re.IGNORECASE)


@pytest.mark.parametrize(
    ("page", "kinds"),
    [("/docs", {".js", ".css", ".png"}), ("/redoc", {".js", ".png"})],
)
async def test_docs_page_and_every_asset_it_names_come_from_the_app(
    api: httpx.AsyncClient, page: str, kinds: set[str]
) -> None:
    response = await api.get(page)
    assert response.status_code == 200
    html = response.text
    assert not _EXTERNAL.findall(html), "the page names an outside host"

    assets = _ASSET.findall(html)
    assert {asset[asset.rfind(".") :] for asset in assets} >= kinds
    for asset in assets:
        fetched = await api.get(urljoin(page, asset))
        assert fetched.status_code == 200, asset
        assert fetched.content

    schema = await api.get("/openapi.json")
    assert schema.status_code == 200
    assert "/api/marketplace/orders" in schema.json()["paths"]
