from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AliasChoices, ConfigDict, Field

from app.models.enums import ConnectionStatus
from app.schemas import CamelModel


class FieldOut(CamelModel):
    name: str
    label: str
    hint: str
    secret: bool


class ScopeOut(CamelModel):
    name: str
    hint: str


class PlatformOut(CamelModel):
    code: str
    name: str
    is_active: bool
    required_fields: list[FieldOut]
    optional_fields: list[FieldOut]
    scopes: list[ScopeOut]


class ConnectionCreate(CamelModel):
    """Every field is optional here so that missing ones are reported together, per platform."""

    model_config = ConfigDict(coerce_numbers_to_str=True)

    user_id: str | None = Field(None, max_length=128)
    platform_code: str | None = Field(None, max_length=32)
    shop_id: str | None = Field(None, max_length=128)
    shop_name: str | None = Field(None, max_length=255)
    access_token: str | None = Field(None, max_length=4096)
    # TikTok Shop calls them appKey and appSecret (INTERFACE.md "TikTok Shop").
    api_key: str | None = Field(
        None, max_length=512, validation_alias=AliasChoices("apiKey", "appKey", "api_key")
    )
    api_secret: str | None = Field(
        None, max_length=1024, validation_alias=AliasChoices("apiSecret", "appSecret", "api_secret")
    )
    refresh_token: str | None = Field(None, max_length=4096)
    # TikTok Shop's shop cipher: optional, since the client reads it from the shop list.
    shop_cipher: str | None = Field(
        None,
        max_length=256,
        description="TikTok Shop: checked against the cipher TikTok gives the shop, then kept",
    )
    sync_interval_minutes: int | None = Field(None, ge=5, le=1440)
    start_sync: bool = Field(
        True,
        description="Start the connection's first sync now (false: leave it to the schedule "
        "or a sync-orders call)",
    )


class CredentialsUpdate(CamelModel):
    model_config = ConfigDict(coerce_numbers_to_str=True)

    api_key: str | None = Field(
        None,
        min_length=1,
        max_length=512,
        validation_alias=AliasChoices("apiKey", "appKey", "api_key"),
    )
    api_secret: str | None = Field(
        None,
        min_length=1,
        max_length=1024,
        validation_alias=AliasChoices("apiSecret", "appSecret", "api_secret"),
    )
    access_token: str | None = Field(None, min_length=1, max_length=4096)
    refresh_token: str | None = Field(None, min_length=1, max_length=4096)


class ConnectionUpdate(CamelModel):
    model_config = ConfigDict(coerce_numbers_to_str=True, extra="forbid")

    user_id: str | None = Field(None, max_length=128)
    shop_name: str | None = Field(None, max_length=255)
    credentials: CredentialsUpdate | None = None
    sync_interval_minutes: int | None = Field(None, ge=5, le=1440)
    is_active: bool | None = None


class MaskedCredentials(CamelModel):
    api_key: str | None
    api_secret: str | None
    access_token: str | None
    refresh_token: str | None
    access_token_expires_at: datetime | None


class ConnectionOut(CamelModel):
    id: uuid.UUID
    user_id: str
    platform_code: str
    shop_id: str
    shop_name: str | None
    country: str | None = Field(
        None, description="ISO 3166 alpha-2 (Lazada and Shopee), where the platform says"
    )
    status: ConnectionStatus
    status_reason: str | None = Field(
        description="Why the status is what it is (the platform's words)"
    )
    is_active: bool
    sync_interval_minutes: int | None
    next_sync_at: datetime | None = Field(
        description="When the schedule syncs this shop next (null: not scheduled)"
    )
    last_sync_at: datetime | None
    created_at: datetime
    updated_at: datetime
    credentials: MaskedCredentials
