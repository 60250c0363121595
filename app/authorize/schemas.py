from __future__ import annotations

from pydantic import ConfigDict, Field

from app.connections.schemas import ConnectionOut
from app.schemas import CamelModel


class ConnectStart(CamelModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=128, description="Must equal the token's subject")
    redirect_url: str | None = Field(
        None,
        max_length=2048,
        description="Where the seller's browser goes afterwards (default CONNECT_REDIRECT_URL); "
        "must be on CONNECT_REDIRECT_ALLOWLIST",
    )


class ConnectStartOut(CamelModel):
    authorization_url: str = Field(description="Send the seller's browser here")
    state: str = Field(description="Works once, for 10 minutes; the callback checks it")


class ConnectComplete(CamelModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=128, description="Must equal the token's subject")
    grant: str = Field(
        min_length=1,
        max_length=256,
        description="The `grant` the callback added to the redirect URL (single use, 10 minutes)",
    )


class SkippedShopOut(CamelModel):
    shop_id: str
    country: str | None = Field(description="ISO 3166 alpha-2, where the platform has several")
    message: str = Field(description="Why its check failed")


class ConnectCompleteOut(CamelModel):
    data: list[ConnectionOut] = Field(description="One connection per shop the grant held")
    skipped: list[SkippedShopOut] = Field(
        description="Shops the grant named whose check failed (a Lazada country), left out"
    )
