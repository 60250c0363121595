"""The marketplaces' authorization pages and code exchanges, so a connect flow runs end to end.

Each page approves at once (a 302 back to the app with a code), as a seller who clicks
"Authorize" would; `deny=1` on the page refuses instead. The seller is the app's first shop
unless the page is given `shop_id` (Shopee), `seller_id` (Lazada) or `page_id` (Meta, comma
separated). Codes work once, for 10 minutes, as on the platforms."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from app.platforms.lazada.auth import sign as lazada_sign
from app.sandbox.common import JSONResponse, read_json_or_none
from app.sandbox.facebook import FacebookSandbox
from app.sandbox.lazada import LazadaSandbox
from app.sandbox.shopee import ShopeeSandbox, expected_sign

CODE_TTL_SECONDS = 600
SHOPEE_TIMESTAMP_TOLERANCE = 300
LAZADA_COUNTRIES = ("th", "my", "sg", "ph", "vn", "id")
USER_TOKEN_TTL_SECONDS = 3600
LONG_USER_TOKEN_TTL_SECONDS = 60 * 86400


@dataclass
class Grant:
    platform: str
    client_id: str
    # Shopee: the shop id; Lazada: seller id by country; Meta: the granted Page ids.
    subject: Any
    redirect_uri: str
    expires_at: float


@dataclass
class UserToken:
    app_id: str
    page_ids: list[str]
    expires_at: float


@dataclass
class AuthorizeSandbox:
    shopee: ShopeeSandbox
    facebook: FacebookSandbox
    # Lazada's gateway per country (lower case); "th" is the main Lazada sandbox.
    lazada: dict[str, LazadaSandbox]
    codes: dict[str, Grant] = field(default_factory=dict)
    user_tokens: dict[str, UserToken] = field(default_factory=dict)
    # A Lazada account selling in several countries: each seller id -> the account's sellers.
    lazada_accounts: dict[str, dict[str, str]] = field(default_factory=dict)
    # The token answer's `country` of each such account (`cb` for a cross-border seller).
    lazada_token_countries: dict[frozenset[tuple[str, str]], str] = field(default_factory=dict)
    exchanges: int = 0

    def issue_code(self, grant: Grant) -> str:
        code = secrets.token_hex(16)
        self.codes[code] = grant
        return code

    def take_code(self, code: str | None, platform: str, client_id: str) -> Grant | None:
        grant = self.codes.pop(code or "", None)
        if grant is None or grant.platform != platform or grant.client_id != client_id:
            return None
        return grant if grant.expires_at > time.time() else None

    def add_lazada_account(
        self,
        *,
        app_key: str,
        app_secret: str,
        sellers: Mapping[str, str],
        order_count: int = 0,
        token_country: str | None = None,
        not_on_gateway: Collection[str] = (),
    ) -> dict[str, str]:
        """A seller with a shop in each of `sellers`' countries (country -> seller id, in the
        order `country_user_info` lists them), each on that country's gateway except those in
        `not_on_gateway`; their consent page grants all of them at once. The token answer's
        `country` is `token_country` (default: `cb`, a cross-border seller, for several
        countries; the one country otherwise)."""
        account = {country.lower(): seller_id for country, seller_id in sellers.items()}
        skipped = {country.lower() for country in not_on_gateway}
        for country, seller_id in account.items():
            if country not in skipped:
                self.lazada[country].add_shop(
                    seller_id=seller_id,
                    app_key=app_key,
                    app_secret=app_secret,
                    seed=f"lazada-{country}-{seller_id}",
                    order_count=order_count,
                )
            self.lazada_accounts[seller_id] = account
        self.lazada_token_countries[frozenset(account.items())] = (
            token_country or ("cb" if len(account) > 1 else next(iter(account)))
        ).lower()
        return account


def _back(url: str, params: Mapping[str, str]) -> RedirectResponse:
    return RedirectResponse(
        url + ("&" if "?" in url else "?") + urlencode(dict(params)), status_code=302
    )


def _expiry() -> float:
    return time.time() + CODE_TTL_SECONDS


# --- Shopee (reference §1.4) -----------------------------------------------------------------


def _shopee_error(code: str, message: str, status: int = 403) -> Response:
    body = {"request_id": secrets.token_hex(16), "error": code, "message": message}
    return JSONResponse(body, status_code=status)


def _shopee_partner(state: AuthorizeSandbox, query: Mapping[str, str], path: str) -> int | None:
    """The partner id of a correctly signed public call, or None."""
    try:
        partner_id, timestamp = int(query["partner_id"]), int(query["timestamp"])
    except (KeyError, ValueError):
        return None
    key = state.shopee.partner_key(partner_id)
    if key is None or abs(time.time() - timestamp) > SHOPEE_TIMESTAMP_TOLERANCE:
        return None
    expected = expected_sign(key, partner_id, path, timestamp)
    return partner_id if hmac.compare_digest(expected, query.get("sign", "")) else None


def shopee_routes(state: AuthorizeSandbox) -> list[BaseRoute]:
    auth_partner = "/api/v2/shop/auth_partner"
    token_get = "/api/v2/auth/token/get"

    async def authorize_page(request: Request) -> Response:
        query = request.query_params
        partner_id = _shopee_partner(state, query, auth_partner)
        redirect = query.get("redirect")
        if partner_id is None or not redirect:
            return _shopee_error("error_sign", "Wrong sign, partner or redirect.")
        if query.get("deny"):
            return _back(redirect, {"error": "access_denied"})
        shops = [s for s in state.shopee.shops.values() if s.partner_id == partner_id]
        if query.get("shop_id"):
            shops = [s for s in shops if str(s.shop_id) == query["shop_id"]]
        if not shops:
            return _shopee_error("error_param", "No shop of this partner to authorize.", 400)
        shop = shops[0]
        grant = Grant("shopee", str(partner_id), shop.shop_id, redirect, _expiry())
        return _back(redirect, {"code": state.issue_code(grant), "shop_id": str(shop.shop_id)})

    async def token_get_endpoint(request: Request) -> Response:
        partner_id = _shopee_partner(state, request.query_params, token_get)
        if partner_id is None:
            return _shopee_error("error_sign", "Wrong sign.")
        body = await read_json_or_none(request)
        if not isinstance(body, dict) or body.get("partner_id") != partner_id:
            return _shopee_error("error_param", "Wrong parameters.", 400)
        grant = state.take_code(body.get("code"), "shopee", str(partner_id))
        if grant is None or grant.subject != body.get("shop_id"):
            return _shopee_error("error_auth", "Invalid code.")
        state.exchanges += 1
        access, refresh = state.shopee.tokens.issue(str(grant.subject))
        # Auth endpoints answer at the top level (reference §1.4).
        return JSONResponse(
            {
                "request_id": secrets.token_hex(16),
                "error": "",
                "message": "",
                "access_token": access.value,
                "refresh_token": refresh.value,
                "expire_in": state.shopee.tokens.access_ttl_seconds,
                "shop_id_list": [grant.subject],
                "merchant_id_list": [],
            }
        )

    return [
        Route("/shopee" + auth_partner, authorize_page, methods=["GET"]),
        Route("/shopee" + token_get, token_get_endpoint, methods=["POST"]),
    ]


# --- Lazada (reference §2.1, §2.3) -----------------------------------------------------------


def _lazada_error(code: str, message: str) -> Response:
    body = {"type": "ISV", "code": code, "message": message, "request_id": secrets.token_hex(8)}
    return JSONResponse(body)


def lazada_routes(state: AuthorizeSandbox) -> list[BaseRoute]:
    token_create = "/auth/token/create"
    home = state.lazada["th"]

    async def consent_page(request: Request) -> Response:
        query = request.query_params
        client_id, redirect = query.get("client_id", ""), query.get("redirect_uri")
        if client_id not in home.apps or not redirect:
            return _lazada_error("InvalidAppKey", "Unknown client_id or no redirect_uri")
        echo = {"state": query["state"]} if "state" in query else {}
        if query.get("deny"):
            return _back(redirect, {"error": "access_denied", **echo})
        seller_id = query.get("seller_id")
        account = state.lazada_accounts.get(seller_id or "")
        if account is None:
            sellers = [s for s in home.shops.values() if s.app_key == client_id]
            if seller_id:
                sellers = [s for s in sellers if s.seller_id == seller_id]
            if not sellers:
                return _lazada_error("InvalidSeller", "No seller of this app to authorize")
            account = {"th": sellers[0].seller_id}
        grant = Grant("lazada", client_id, dict(account), redirect, _expiry())
        return _back(redirect, {"code": state.issue_code(grant), **echo})

    async def token_create_endpoint(request: Request) -> Response:
        params = dict(request.query_params)
        params.update(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        app_key = params.get("app_key", "")
        secret = home.apps.get(app_key)
        given = params.get("sign", "")
        if secret is None or not hmac.compare_digest(
            lazada_sign(token_create, params, secret), given
        ):
            return _lazada_error("IncompleteSignature", "The request signature is invalid")
        grant = state.take_code(params.get("code"), "lazada", app_key)
        if grant is None:
            return _lazada_error("InvalidCode", "The authorization code is invalid or expired")
        state.exchanges += 1
        # One token pair for the whole account, known to each country's gateway.
        access_value, refresh_value = secrets.token_hex(16), secrets.token_hex(16)
        for country, seller_id in grant.subject.items():
            state.lazada[country].tokens.issue(
                seller_id, access=access_value, refresh=refresh_value
            )
        first = next(iter(grant.subject))
        country = state.lazada_token_countries.get(frozenset(grant.subject.items()), first)
        return JSONResponse(
            {
                "access_token": access_value,
                "refresh_token": refresh_value,
                "expires_in": home.tokens.access_ttl_seconds,
                "refresh_expires_in": home.tokens.refresh_ttl_seconds,
                "country": country,
                "account_platform": "seller_center",
                "account": f"seller{grant.subject[first]}@example.com",
                "country_user_info": [
                    {
                        "country": country,
                        "user_id": seller_id,
                        "seller_id": seller_id,
                        "short_code": f"{country.upper()}{seller_id[-6:]}",
                    }
                    for country, seller_id in grant.subject.items()
                ],
                "code": "0",
                "request_id": secrets.token_hex(8),
            }
        )

    return [
        Route("/lazada/oauth/authorize", consent_page, methods=["GET"]),
        Route("/lazada/auth/rest" + token_create, token_create_endpoint, methods=["GET", "POST"]),
    ]


# --- Meta (reference §3.5) -------------------------------------------------------------------


def _graph_error(message: str, code: int = 100, status: int = 400) -> Response:
    error = {"message": message, "type": "OAuthException", "code": code}
    return JSONResponse({"error": error}, status_code=status)


def facebook_routes(state: AuthorizeSandbox) -> list[BaseRoute]:
    def app_secret(app_id: str) -> str | None:
        page = next((p for p in state.facebook.pages.values() if p.app_id == app_id), None)
        return page.app_secret if page is not None else None

    async def login_dialog(request: Request) -> Response:
        query = request.query_params
        client_id, redirect = query.get("client_id", ""), query.get("redirect_uri")
        if app_secret(client_id) is None or not redirect:
            return _graph_error("Invalid app ID or redirect_uri")
        echo = {"state": query["state"]} if "state" in query else {}
        if query.get("deny"):
            refusal = {"error": "access_denied", "error_reason": "user_denied"}
            return _back(redirect, {**refusal, "error_description": "Permissions error", **echo})
        pages = [p.page_id for p in state.facebook.pages.values() if p.app_id == client_id]
        if query.get("page_id"):
            wanted = query["page_id"].split(",")
            pages = [p for p in pages if p in wanted]
        grant = Grant("facebook", client_id, pages, redirect, _expiry())
        return _back(redirect, {"code": state.issue_code(grant), **echo})

    async def access_token(request: Request) -> Response:
        query = request.query_params
        client_id = query.get("client_id", "")
        secret = app_secret(client_id)
        if secret is None or not hmac.compare_digest(secret, query.get("client_secret", "")):
            return _graph_error("Error validating client secret.", code=1)
        if query.get("grant_type") == "fb_exchange_token":
            short = state.user_tokens.get(query.get("fb_exchange_token", ""))
            if short is None or short.app_id != client_id or short.expires_at <= time.time():
                return _graph_error("Invalid OAuth access token.", code=190)
            ttl, pages = LONG_USER_TOKEN_TTL_SECONDS, short.page_ids
        else:
            grant = state.take_code(query.get("code"), "facebook", client_id)
            if grant is None or grant.redirect_uri != query.get("redirect_uri"):
                return _graph_error("Invalid verification code format.", code=100)
            state.exchanges += 1
            ttl, pages = USER_TOKEN_TTL_SECONDS, grant.subject
        token = "EAAU" + secrets.token_urlsafe(32)
        state.user_tokens[token] = UserToken(client_id, list(pages), time.time() + ttl)
        return JSONResponse({"access_token": token, "token_type": "bearer", "expires_in": ttl})

    async def accounts(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        value = header[7:].strip() if header.lower().startswith("bearer ") else None
        value = value or request.query_params.get("access_token", "")
        user = state.user_tokens.get(value)
        if user is None or user.expires_at <= time.time():
            return _graph_error("Invalid OAuth access token.", code=190)
        secret = app_secret(user.app_id) or ""
        proof = hmac.new(secret.encode(), value.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(proof, request.query_params.get("appsecret_proof", "")):
            return _graph_error("Invalid appsecret_proof provided in the API argument")
        data = []
        for page_id in user.page_ids:
            page = state.facebook.pages[page_id]
            # A Page token from a long-lived user token does not expire.
            token = state.facebook.issue_token(page, ttl_seconds=10 * 365 * 86400)
            data.append({"id": page.page_id, "name": page.name, "access_token": token})
        return JSONResponse({"data": data, "paging": {}})

    return [
        Route("/facebook/dialog/oauth", login_dialog, methods=["GET"]),
        Route("/facebook/{version}/oauth/access_token", access_token, methods=["GET"]),
        Route("/facebook/{version}/me/accounts", accounts, methods=["GET"]),
    ]


def routes(state: AuthorizeSandbox) -> list[BaseRoute]:
    """Routes to put before the platforms' own mounts (they share their path prefixes)."""
    return [*shopee_routes(state), *lazada_routes(state), *facebook_routes(state)]
