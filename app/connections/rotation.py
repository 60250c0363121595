"""`omni-sales rotate-keys`: re-encrypt every stored secret with the first key."""

from __future__ import annotations

from sqlalchemy import select

from app.config import Settings
from app.crypto import CredentialCipher
from app.db import Database
from app.models import MarketplaceConnection

_FIELDS = (
    "api_key_encrypted",
    "api_secret_encrypted",
    "access_token_encrypted",
    "refresh_token_encrypted",
)


async def rotate_all(settings: Settings, *, batch_size: int = 500) -> int:
    cipher = CredentialCipher([k.get_secret_value() for k in settings.credentials_encryption_keys])
    database = Database(settings)
    rotated = 0
    try:
        last_id = None
        while True:
            async with database.session() as session, session.begin():
                query = select(MarketplaceConnection).order_by(MarketplaceConnection.id)
                if last_id is not None:
                    query = query.where(MarketplaceConnection.id > last_id)
                rows = (await session.scalars(query.limit(batch_size).with_for_update())).all()
                for row in rows:
                    rotated += rotate_row(row, cipher)
                if not rows:
                    return rotated
                last_id = rows[-1].id
    finally:
        await database.dispose()


def rotate_row(row: MarketplaceConnection, cipher: CredentialCipher) -> int:
    """Re-encrypt the row's secrets under the first key; 1 if anything changed."""
    changed = 0
    for field in _FIELDS:
        token = getattr(row, field)
        if token and not cipher.is_current(token):
            setattr(row, field, cipher.rotate(token))
            changed = 1
    return changed
