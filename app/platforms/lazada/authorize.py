"""Lazada seller authorization (reference §2.1, §2.3): the consent page on the auth host, then
`/auth/token/create` with the returned code. The answer names the seller once per country
(`country_user_info`); each country is its own shop, served by that country's gateway."""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlencode

from app.platforms.authorize import AuthorizedShop, Callback, ConnectFlow
from app.platforms.errors import PermanentError
from app.platforms.lazada.auth import LazadaAuth
from app.platforms.lazada.client import token_pair
from app.platforms.lazada.mapping import PLATFORM, classify_response
from app.platforms.types import Credentials, PlatformCode, ShopInfo

TOKEN_CREATE = "/auth/token/create"


class LazadaConnectFlow(ConnectFlow):
    platform: ClassVar[PlatformCode] = PlatformCode.LAZADA

    def authorization_url(self, *, callback_url: str, state: str) -> str:
        query = {
            "response_type": "code",
            "force_auth": "true",
            "redirect_uri": callback_url,
            "client_id": self.app.api_key,
            "state": state,
        }
        url = self.settings.lazada_oauth_url
        return url + ("&" if "?" in url else "?") + urlencode(query)

    async def exchange(self, callback: Callback, *, callback_url: str) -> list[AuthorizedShop]:
        payload = await self._call(
            "POST",
            self.settings.lazada_auth_url.rstrip("/") + TOKEN_CREATE,
            classify_response,
            data={"code": callback.code},
            auth=LazadaAuth(self.app.api_key, self.app.api_secret, TOKEN_CREATE),
        )
        pair = token_pair(payload)
        sellers = _sellers_by_country(payload)
        if not sellers:
            raise PermanentError("Lazada's token answer named no seller", platform=PLATFORM)
        # A local seller is the token's `country` alone, whatever else `country_user_info`
        # lists; a cross-border (`cb`) seller is every listed country. One token pair serves
        # them all; each country's seller id is a shop of its own (its orders live on that
        # country's gateway).
        token_country = str(payload.get("country") or "").upper()
        if token_country in sellers:
            sellers = {token_country: sellers[token_country]}
        return [
            AuthorizedShop(
                Credentials(
                    shop_id=seller_id,
                    api_key=self.app.api_key,
                    api_secret=self.app.api_secret,
                    access_token=pair.access_token,
                    refresh_token=pair.refresh_token,
                    access_expires_at=pair.access_expires_at,
                    refresh_expires_at=pair.refresh_expires_at,
                ),
                country=country,
            )
            for country, seller_id in sellers.items()
        ]

    @classmethod
    def shop_country(cls, shop: ShopInfo) -> str | None:
        # /seller/get names no country; its short code starts with it ("TH1A2B3C").
        short_code = str(shop.raw.get("short_code") or "")[:2].upper()
        return short_code if short_code in LAZADA_COUNTRIES else None

    # LAZADA_BASE_URL is Thailand's gateway: a shop checked there is a Thai one.
    default_country = "TH"


# The countries Lazada sells in, each with its own API gateway (reference §2.1).
LAZADA_COUNTRIES = frozenset({"TH", "MY", "SG", "PH", "VN", "ID"})


def _sellers_by_country(payload: dict[str, Any]) -> dict[str, str]:
    sellers: dict[str, str] = {}
    entries = payload.get("country_user_info")
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        country, seller_id = entry.get("country"), entry.get("seller_id")
        if isinstance(country, str) and len(country) == 2 and seller_id not in (None, ""):
            sellers.setdefault(country.upper(), str(seller_id))
    return sellers
