"""The Lazada connect form: what a seller fills in, and how each value is checked."""

from __future__ import annotations

from app.platforms.connect_form import DIGITS, SHOP_NAME, FieldSpec, PlatformSpec
from app.platforms.types import PlatformCode

CONNECT_FORM = PlatformSpec(
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
            DIGITS,
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
        SHOP_NAME,
    ),
)
