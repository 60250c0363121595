"""What each marketplace needs to connect: the fields of the connect form, checked on create."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from app.platforms.types import PlatformCode

SECRET_FIELDS = ("apiKey", "apiSecret", "accessToken", "refreshToken")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str  # the body's camelCase name
    label: str
    hint: str
    pattern: str | None = None  # a value must match, else 422 naming the field
    pattern_hint: str | None = None
    secret: bool = False


@dataclass(frozen=True, slots=True)
class ScopeSpec:
    name: str
    hint: str


@dataclass(frozen=True, slots=True)
class PlatformSpec:
    code: PlatformCode
    name: str
    required: tuple[FieldSpec, ...]
    optional: tuple[FieldSpec, ...]
    scopes: tuple[ScopeSpec, ...] = field(default=())

    def field(self, name: str) -> FieldSpec | None:
        return next((f for f in (*self.required, *self.optional) if f.name == name), None)

    def invalid_value(self, name: str, value: str) -> str | None:
        spec = self.field(name)
        if spec is None or spec.pattern is None or re.fullmatch(spec.pattern, value):
            return None
        return spec.pattern_hint or f"{name} has an invalid format"


_DIGITS = r"[0-9]{1,20}"
_SHOP_NAME = FieldSpec(
    "shopName", "Shop name", "Shown in Omni Sales; read from the platform if empty"
)

PLATFORMS: dict[PlatformCode, PlatformSpec] = {
    PlatformCode.SHOPEE: PlatformSpec(
        code=PlatformCode.SHOPEE,
        name="Shopee",
        required=(
            FieldSpec(
                "shopId",
                "Shop ID",
                "The numeric shop_id returned when the shop authorized your app",
                _DIGITS,
                "shopId must be the numeric Shopee shop_id",
            ),
            FieldSpec(
                "apiKey",
                "Partner ID",
                "Your app's partner_id on Shopee Open Platform",
                _DIGITS,
                "apiKey must be the numeric Shopee partner_id",
                secret=True,
            ),
            FieldSpec(
                "apiSecret",
                "Partner key",
                "Your app's partner key (Open Platform console)",
                secret=True,
            ),
            FieldSpec(
                "accessToken",
                "Access token",
                "The shop's access_token from "
                "/api/v2/auth/token/get (valid 4 hours; refreshed automatically)",
                secret=True,
            ),
        ),
        optional=(
            FieldSpec(
                "refreshToken",
                "Refresh token",
                "Lets Omni Sales renew the access token (valid 30 days, single use)",
                secret=True,
            ),
            _SHOP_NAME,
        ),
    ),
    PlatformCode.LAZADA: PlatformSpec(
        code=PlatformCode.LAZADA,
        name="Lazada",
        required=(
            FieldSpec(
                "shopId",
                "Seller ID",
                "The seller_id of the shop (country_user_info in the token response)",
                r"[A-Za-z0-9_-]{1,64}",
                "shopId must be the Lazada seller_id",
            ),
            FieldSpec(
                "apiKey",
                "App key",
                "Your app's app_key on Lazada Open Platform",
                _DIGITS,
                "apiKey must be the numeric Lazada app_key",
                secret=True,
            ),
            FieldSpec("apiSecret", "App secret", "Your app's app_secret", secret=True),
            FieldSpec(
                "accessToken",
                "Access token",
                "The seller's access_token from /auth/token/create",
                secret=True,
            ),
        ),
        optional=(
            FieldSpec(
                "refreshToken",
                "Refresh token",
                "Lets Omni Sales renew the access token before it expires",
                secret=True,
            ),
            _SHOP_NAME,
        ),
    ),
    PlatformCode.FACEBOOK: PlatformSpec(
        code=PlatformCode.FACEBOOK,
        name="Facebook Shop",
        required=(
            FieldSpec(
                "shopId",
                "Facebook Page ID",
                "The numeric id of the Page that owns the shop",
                _DIGITS,
                "shopId must be the numeric Facebook Page id",
            ),
            FieldSpec(
                "apiKey",
                "App ID",
                "Your Meta app's id",
                _DIGITS,
                "apiKey must be the numeric Meta app id",
                secret=True,
            ),
            FieldSpec(
                "apiSecret",
                "App secret",
                "Used to sign calls (appsecret_proof) and to verify webhooks",
                secret=True,
            ),
            FieldSpec(
                "accessToken",
                "Page access token",
                "A long-lived Page or system-user "
                "token with the scopes below; Meta has no refresh token",
                secret=True,
            ),
        ),
        optional=(_SHOP_NAME,),
        scopes=(
            ScopeSpec("pages_read_engagement", "Read the Page (named in the integration guide)"),
            ScopeSpec("pages_manage_metadata", "Subscribe the Page to webhooks"),
            ScopeSpec(
                "commerce_account_read_orders",
                "Read orders (or commerce_account_manage_orders to act on them)",
            ),
            ScopeSpec(
                "commerce_account_read_settings",
                "Find the commerce account of the Page (or commerce_manage_accounts)",
            ),
            ScopeSpec("catalog_management", "Read products and stock from the catalog"),
            ScopeSpec("business_management", "Needed for system-user tokens"),
            ScopeSpec(
                "commerce_management_api",
                "Named by the original guide but not listed on "
                "Meta's Commerce API set-up page; not needed",
            ),
        ),
    ),
}
