from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field, field_validator

from app.accounts.scopes import Scope
from app.accounts.service import MAX_PASSWORD_LENGTH
from app.schemas import CamelModel


class LoginRequest(CamelModel):
    email: str = Field(max_length=254)
    password: str = Field(max_length=MAX_PASSWORD_LENGTH)


class RefreshRequest(CamelModel):
    refresh_token: str = Field(min_length=1, max_length=256)


class TokenPairOut(CamelModel):
    user_id: str
    access_token: str = Field(description="A JWT for `Authorization: Bearer`")
    refresh_token: str = Field(description="Single use: `POST /api/auth/refresh` swaps it")
    expires_in: int = Field(description="Seconds until the access token expires")


class ApiKeyCreate(CamelModel):
    user_id: str = Field(max_length=128)
    name: str = Field(min_length=1, max_length=100)
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))

    @field_validator("name")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class ApiKeyOut(CamelModel):
    id: uuid.UUID
    name: str
    scopes: list[str]
    last4: str = Field(description="The key's last 4 characters, to tell keys apart")
    created_at: datetime
    last_used_at: datetime | None = Field(
        None, description="When the key last authenticated a request (to the minute)"
    )


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The key itself (`omni_...`): shown only in this answer")
