from __future__ import annotations

import httpx
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.connections.credentials import decrypt_credentials
from app.connections.rotation import rotate_all
from app.crypto import CredentialCipher
from app.models import MarketplaceConnection
from tests.conftest import (
    ENCRYPTION_KEY,
    RunningSandbox,
    auth_headers,
    connection_body,
    create_sandbox_shop,
    make_settings,
)


async def test_rotate_keys_re_encrypts_every_row_with_the_first_key(
    api: httpx.AsyncClient,
    sandbox: RunningSandbox,
    database_url: str,
    redis_url: str,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    originals = []
    for platform in ("shopee", "lazada"):
        credentials = await create_sandbox_shop(sandbox, platform)
        originals.append(credentials)
        response = await api.post(
            "/api/marketplace/connections",
            json=connection_body("u1", platform, credentials),
            headers=auth_headers("u1"),
        )
        assert response.status_code == 201

    new_key = CredentialCipher.generate_key()
    settings = make_settings(
        database_url,
        redis_url,
        CREDENTIALS_ENCRYPTION_KEYS=[SecretStr(new_key), SecretStr(ENCRYPTION_KEY)],
    )
    assert await rotate_all(settings) == 2
    assert await rotate_all(settings) == 0  # already under the first key

    only_new = CredentialCipher([new_key])
    only_old = CredentialCipher([ENCRYPTION_KEY])
    async with session_factory() as session:
        rows = (await session.scalars(select(MarketplaceConnection))).all()
    by_shop = {row.shop_id: row for row in rows}
    for credentials in originals:
        row = by_shop[credentials["shopId"]]
        decrypted = decrypt_credentials(row, only_new)
        assert decrypted.api_secret == credentials["apiSecret"]
        assert decrypted.access_token == credentials["accessToken"]
        assert not only_old.is_current(row.api_secret_encrypted)
