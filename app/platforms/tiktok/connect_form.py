"""The TikTok Shop connect form: what a seller fills in, and how each value is checked.
`apiKey`/`apiSecret` are TikTok's app key and secret (`appKey`/`appSecret` in its words)."""

from __future__ import annotations

from app.platforms.connect_form import SHOP_NAME, FieldSpec, PlatformSpec
from app.platforms.types import PlatformCode

CONNECT_FORM = PlatformSpec(
    code=PlatformCode.TIKTOK,
    name="TikTok Shop",
    required=(
        FieldSpec(
            "shopId",
            "Shop ID",
            "The shop's id (digits) from /authorization/202309/shops",
            r"[0-9]{1,25}",
            "shopId must be the numeric TikTok Shop shop id",
        ),
        FieldSpec(
            "apiKey",
            "App key",
            "Your app's app_key in TikTok Shop Partner Center (appKey)",
            r"[A-Za-z0-9]{1,64}",
            "apiKey must be the TikTok Shop app_key",
            secret=True,
        ),
        FieldSpec("apiSecret", "App secret", "Your app's app_secret (appSecret)", secret=True),
        FieldSpec(
            "accessToken",
            "Access token",
            "The seller's access_token from /api/v2/token/get",
            secret=True,
        ),
        FieldSpec(
            "refreshToken",
            "Refresh token",
            "Renews the access token, which TikTok Shop expires every 7 days",
            secret=True,
        ),
    ),
    optional=(
        FieldSpec(
            "shopCipher",
            "Shop cipher",
            "Read from /authorization/202309/shops with the token when left empty",
        ),
        SHOP_NAME,
    ),
)
