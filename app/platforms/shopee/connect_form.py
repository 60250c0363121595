"""The Shopee connect form: what a seller fills in, and how each value is checked."""

from __future__ import annotations

from app.platforms.connect_form import DIGITS, SHOP_NAME, FieldSpec, PlatformSpec
from app.platforms.types import PlatformCode

CONNECT_FORM = PlatformSpec(
    numeric_shop_id=True,
    code=PlatformCode.SHOPEE,
    name="Shopee",
    required=(
        FieldSpec(
            "shopId",
            "Shop ID",
            "The numeric shop_id returned when the shop authorized your app",
            DIGITS,
            "shopId must be the numeric Shopee shop_id",
        ),
        FieldSpec(
            "apiKey",
            "Partner ID",
            "Your app's partner_id on Shopee Open Platform",
            DIGITS,
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
        SHOP_NAME,
    ),
)
