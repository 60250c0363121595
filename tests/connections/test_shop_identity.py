"""A connection's shop is the one the marketplace reports for the credentials, stored once in
its canonical form; a second connection of it is 409 `connection_exists` with its id."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import MarketplaceConnection
from tests.conftest import RunningSandbox, auth_headers, connection_body, create_sandbox_shop

USER = "seller-identity"
CONNECTIONS = "/api/marketplace/connections"


async def post_connection(
    api: httpx.AsyncClient, platform: str, credentials: dict[str, str], **changes: str
) -> httpx.Response:
    body: dict[str, Any] = {**connection_body(USER, platform, credentials), **changes}
    return await api.post(CONNECTIONS, json=body, headers=auth_headers(USER))


async def stored_shop_ids(session_factory: async_sessionmaker[AsyncSession]) -> list[str]:
    async with session_factory() as session:
        return list((await session.scalars(select(MarketplaceConnection.shop_id))).all())


@pytest.mark.parametrize("claimed", ["99999", "ABC"])
async def test_lazada_credentials_of_another_seller_are_refused_naming_both_ids(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    claimed: str,
) -> None:
    credentials = await create_sandbox_shop(sandbox, "lazada")
    response = await post_connection(api, "lazada", credentials, shopId=claimed)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "marketplace_connection_failed"
    assert error["shopId"] == claimed
    assert error["platformShopId"] == credentials["shopId"]
    assert claimed in error["message"] and credentials["shopId"] in error["message"]
    assert await stored_shop_ids(session_factory) == []


@pytest.mark.parametrize("platform", ["shopee", "facebook"])
async def test_numeric_shop_id_with_leading_zeros_is_the_same_shop(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    platform: str,
) -> None:
    credentials = await create_sandbox_shop(sandbox, platform)
    real = credentials["shopId"]
    first = await post_connection(api, platform, credentials)
    assert first.status_code == 201, first.text
    winner = first.json()["data"]
    for padded in ("0" + real, "00" + real):
        again = await post_connection(api, platform, credentials, shopId=padded)
        assert again.status_code == 409, again.text
        assert again.json()["error"]["code"] == "connection_exists"
        assert again.json()["error"]["connectionId"] == winner["id"]
    assert await stored_shop_ids(session_factory) == [real]


@pytest.mark.parametrize("platform", ["shopee", "facebook"])
async def test_a_padded_shop_id_is_accepted_and_stored_canonical(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
    platform: str,
) -> None:
    credentials = await create_sandbox_shop(sandbox, platform)
    response = await post_connection(api, platform, credentials, shopId="0" + credentials["shopId"])
    assert response.status_code == 201, response.text
    assert response.json()["data"]["shopId"] == credentials["shopId"]
    assert await stored_shop_ids(session_factory) == [credentials["shopId"]]


async def test_facebook_token_of_another_page_is_refused(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    mine = await create_sandbox_shop(sandbox, "facebook")
    other = await create_sandbox_shop(sandbox, "facebook")
    response = await post_connection(api, "facebook", mine, shopId=other["shopId"])
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "marketplace_connection_failed"
    assert await stored_shop_ids(session_factory) == []


async def test_concurrent_identical_connects_store_one_and_name_it_to_the_others(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    credentials = await create_sandbox_shop(sandbox, "shopee")
    responses = await asyncio.gather(
        *(post_connection(api, "shopee", credentials) for _ in range(20))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 19, [r.text for r in responses if r.status_code != 409]
    winner = next(r for r in responses if r.status_code == 201).json()["data"]
    for loser in (r for r in responses if r.status_code == 409):
        assert loser.json()["error"]["code"] == "connection_exists"
        assert loser.json()["error"]["connectionId"] == winner["id"]
    assert await stored_shop_ids(session_factory) == [credentials["shopId"]]


async def test_patching_a_refresh_token_onto_facebook_is_refused_and_not_stored(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    credentials = await create_sandbox_shop(sandbox, "facebook")
    created = await post_connection(api, "facebook", credentials)
    assert created.status_code == 201, created.text
    connection_id = created.json()["data"]["id"]
    response = await api.patch(
        f"{CONNECTIONS}/{connection_id}",
        json={"credentials": {"refreshToken": "a-refresh-token"}},
        headers=auth_headers(USER),
    )
    assert response.status_code == 422, response.text
    fields = [f["field"] for f in response.json()["error"]["fields"]]
    assert fields == ["credentials.refreshToken"]
    async with session_factory() as session:
        refresh = await session.scalar(select(MarketplaceConnection.refresh_token_encrypted))
    assert refresh is None
