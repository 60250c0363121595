"""Shopee shop authorization (reference §1.4): the signed `auth_partner` link, then
`auth/token/get` with the code and shop id Shopee appends to the redirect."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlencode

from app.platforms.authorize import AuthorizedShop, Callback, ConnectFlow
from app.platforms.errors import PermanentError
from app.platforms.shopee.auth import ShopeeAuth, sign
from app.platforms.shopee.client import REFRESH_TOKEN_LIFETIME
from app.platforms.shopee.mapping import PLATFORM, classify_response
from app.platforms.types import Credentials, PlatformCode, ShopInfo

AUTH_PARTNER = "/api/v2/shop/auth_partner"
TOKEN_GET = "/api/v2/auth/token/get"


def with_query(url: str, **params: str) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


class ShopeeConnectFlow(ConnectFlow):
    platform: ClassVar[PlatformCode] = PlatformCode.SHOPEE

    @property
    def partner_id(self) -> int:
        return int(self.app.api_key)

    def authorization_url(self, *, callback_url: str, state: str) -> str:
        # Shopee has no `state` parameter: it appends code and shop_id to the redirect as
        # given, so the state travels inside the redirect URL itself.
        timestamp = int(time.time())
        signature = sign(self.app.api_secret, self.partner_id, AUTH_PARTNER, timestamp)
        base = self.settings.shopee_base_url.rstrip("/") + AUTH_PARTNER
        return with_query(
            base,
            partner_id=str(self.partner_id),
            timestamp=str(timestamp),
            sign=signature,
            redirect=with_query(callback_url, state=state),
        )

    async def exchange(self, callback: Callback, *, callback_url: str) -> list[AuthorizedShop]:
        if not callback.shop_id or not callback.shop_id.isdigit():
            raise PermanentError("Shopee's redirect named no shop_id", platform=PLATFORM)
        shop_id = int(callback.shop_id)
        auth = ShopeeAuth(
            partner_id=self.partner_id, partner_key=self.app.api_secret, api_path=TOKEN_GET
        )
        payload = await self._call(
            "POST",
            self.settings.shopee_base_url.rstrip("/") + TOKEN_GET,
            classify_response,
            json_body={"code": callback.code, "partner_id": self.partner_id, "shop_id": shop_id},
            auth=auth,
        )
        # The auth endpoints answer at the top level; accept `response` too.
        nested = payload.get("response")
        answer: dict[str, Any] = nested if isinstance(nested, dict) else payload
        access, refresh = answer.get("access_token"), answer.get("refresh_token")
        if not access or not refresh:
            raise PermanentError("Shopee's token answer had no tokens", platform=PLATFORM)
        now = datetime.now(UTC)
        try:
            expires_at: datetime | None = now + timedelta(seconds=int(answer["expire_in"]))
        except (KeyError, TypeError, ValueError):
            expires_at = None
        credentials = Credentials(
            shop_id=str(shop_id),
            api_key=self.app.api_key,
            api_secret=self.app.api_secret,
            access_token=str(access),
            refresh_token=str(refresh),
            access_expires_at=expires_at,
            refresh_expires_at=now + REFRESH_TOKEN_LIFETIME,
        )
        return [AuthorizedShop(credentials)]

    @classmethod
    def shop_country(cls, shop: ShopInfo) -> str | None:
        region = shop.raw.get("region")
        return str(region).upper() if isinstance(region, str) and len(region) == 2 else None
