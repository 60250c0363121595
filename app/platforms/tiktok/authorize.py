"""TikTok Shop seller authorization (reference §4.2): the services authorization page with the
app's `service_id` (TIKTOK_SERVICE_ID, else the app key) and `state`; the callback brings
`code`; `/api/v2/token/get` exchanges it (unsigned, expiry fields absolute); the token's shops
come from `/authorization/{v}/shops`, each its own connection."""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlencode

from app.platforms.authorize import AuthorizedShop, Callback, ConnectFlow
from app.platforms.base import ClientConfig
from app.platforms.errors import PermanentError
from app.platforms.tiktok.client import TikTokClient, token_pair
from app.platforms.tiktok.mapping import PLATFORM, classify_response
from app.platforms.types import Credentials, PlatformCode, ShopInfo


class TikTokConnectFlow(ConnectFlow):
    platform: ClassVar[PlatformCode] = PlatformCode.TIKTOK
    default_country = "TH"

    def authorization_url(self, *, callback_url: str, state: str) -> str:
        query = {
            "service_id": self.settings.tiktok_service_id or self.app.api_key,
            "state": state,
            "redirect_uri": callback_url,
        }
        url = self.settings.tiktok_authorize_url
        return url + ("&" if "?" in url else "?") + urlencode(query)

    async def exchange(self, callback: Callback, *, callback_url: str) -> list[AuthorizedShop]:
        payload = await self._call(
            "GET",
            self.settings.tiktok_auth_url.rstrip("/") + "/api/v2/token/get",
            classify_response,
            params={
                "app_key": self.app.api_key,
                "app_secret": self.app.api_secret,
                "auth_code": callback.code,
                "grant_type": "authorized_code",
            },
        )
        pair = token_pair(payload)
        credentials = Credentials(
            shop_id="",
            api_key=self.app.api_key,
            api_secret=self.app.api_secret,
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            access_expires_at=pair.access_expires_at,
            refresh_expires_at=pair.refresh_expires_at,
        )
        client = TikTokClient(
            credentials,
            ClientConfig(
                base_url=self.settings.tiktok_base_url.rstrip("/"),
                tuning=self.transport.tuning,
                options=self.settings.tiktok_options(),
            ),
            http_client=self.transport.client,
        )
        shops = await client._authorized_shops()
        if not shops:
            raise PermanentError("TikTok Shop's token authorizes no shop", platform=PLATFORM)
        found = []
        for shop in shops:
            shop_id = str(shop.get("id") or "")
            if not shop_id:
                continue
            region = str(shop.get("region") or "").upper() or None
            found.append(
                AuthorizedShop(
                    Credentials(
                        shop_id=shop_id,
                        api_key=self.app.api_key,
                        api_secret=self.app.api_secret,
                        access_token=pair.access_token,
                        refresh_token=pair.refresh_token,
                        access_expires_at=pair.access_expires_at,
                        refresh_expires_at=pair.refresh_expires_at,
                        shop_cipher=str(shop.get("cipher") or "") or None,
                    ),
                    country=region,
                )
            )
        return found

    @classmethod
    def shop_country(cls, shop: ShopInfo) -> str | None:
        region = str(shop.raw.get("region") or "").upper()
        return region if len(region) == 2 else None
