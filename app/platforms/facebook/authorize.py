"""Meta login (reference §3.5): the login dialog with the connect form's scopes, the code
exchanged for a user token, that made long-lived, and the Page tokens it grants (`/me/accounts`).
A Page token obtained from a long-lived user token does not expire."""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlencode

from app.platforms.authorize import AuthorizedShop, Callback, ConnectFlow
from app.platforms.errors import PermanentError
from app.platforms.facebook.auth import GraphAuth
from app.platforms.facebook.connect_form import LOGIN_SCOPES
from app.platforms.facebook.mapping import PLATFORM, classify_response
from app.platforms.types import Credentials, PlatformCode

# A seller with more Pages than this has them listed on further pages of /me/accounts.
ACCOUNTS_PAGE_SIZE = 100
MAX_ACCOUNT_PAGES = 10


class FacebookConnectFlow(ConnectFlow):
    platform: ClassVar[PlatformCode] = PlatformCode.FACEBOOK

    def authorization_url(self, *, callback_url: str, state: str) -> str:
        query = {
            "client_id": self.app.api_key,
            "redirect_uri": callback_url,
            "state": state,
            "response_type": "code",
            "scope": ",".join(LOGIN_SCOPES),
        }
        url = self.settings.facebook_dialog_url
        return url + ("&" if "?" in url else "?") + urlencode(query)

    @property
    def _graph(self) -> str:
        return self.settings.facebook_graph_url.rstrip("/")

    async def _user_token(self, params: dict[str, str]) -> str:
        params = {"client_id": self.app.api_key, "client_secret": self.app.api_secret, **params}
        payload = await self._call(
            "GET", self._graph + "/oauth/access_token", classify_response, params=params
        )
        token = payload.get("access_token")
        if not isinstance(token, str) or not token:
            raise PermanentError("Meta's token answer had no access_token", platform=PLATFORM)
        return token

    async def exchange(self, callback: Callback, *, callback_url: str) -> list[AuthorizedShop]:
        # redirect_uri must be exactly the one the dialog was opened with.
        short = await self._user_token({"redirect_uri": callback_url, "code": callback.code})
        long_lived = await self._user_token(
            {"grant_type": "fb_exchange_token", "fb_exchange_token": short}
        )
        pages = await self._granted_pages(long_lived)
        if not pages:
            raise PermanentError("The seller granted no Facebook Page", platform=PLATFORM)
        return [
            AuthorizedShop(
                Credentials(
                    shop_id=page_id,
                    api_key=self.app.api_key,
                    api_secret=self.app.api_secret,
                    access_token=token,
                )
            )
            for page_id, token in pages.items()
        ]

    async def _granted_pages(self, user_token: str) -> dict[str, str]:
        """Page id -> Page token, for every Page the seller granted the app."""
        pages: dict[str, str] = {}
        url: str | None = self._graph + "/me/accounts"
        params: dict[str, Any] | None = {
            "fields": "id,name,access_token",
            "limit": ACCOUNTS_PAGE_SIZE,
        }
        auth = GraphAuth(user_token, self.app.api_secret)
        for _ in range(MAX_ACCOUNT_PAGES):
            if url is None:
                break
            payload = await self._call("GET", url, classify_response, params=params, auth=auth)
            for entry in payload.get("data") or []:
                if isinstance(entry, dict) and entry.get("id") and entry.get("access_token"):
                    pages.setdefault(str(entry["id"]), str(entry["access_token"]))
            paging = payload.get("paging")
            following = paging.get("next") if isinstance(paging, dict) else None
            url, params = (following, None) if isinstance(following, str) else (None, None)
        return pages
