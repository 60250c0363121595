from __future__ import annotations

from pydantic import ConfigDict, Field

from app.schemas import CamelModel


class ConnectStart(CamelModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=128, description="Must equal the token's subject")
    redirect_url: str | None = Field(
        None,
        max_length=2048,
        description="Where the seller's browser goes afterwards (default CONNECT_REDIRECT_URL)",
    )


class ConnectStartOut(CamelModel):
    authorization_url: str = Field(description="Send the seller's browser here")
    state: str = Field(description="Works once, for 10 minutes; the callback checks it")
