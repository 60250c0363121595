"""The TikTok Shop connect form: what a seller fills in, and how each value is checked.
The app's key and secret go by TikTok's words, `appKey`/`appSecret` (INTERFACE.md); the
shared `apiKey`/`apiSecret` are accepted too."""

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
            "appKey",
            "App key",
            "Your app's app_key in TikTok Shop Partner Center",
            r"[A-Za-z0-9]{1,64}",
            "appKey must be the TikTok Shop app_key (letters and digits)",
            secret=True,
            stands_for="apiKey",
        ),
        FieldSpec(
            "appSecret",
            "App secret",
            "Your app's app_secret in TikTok Shop Partner Center",
            secret=True,
            stands_for="apiSecret",
        ),
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
            "From /authorization/202309/shops; checked against what TikTok Shop gives the "
            "shop, and read from there when left empty",
        ),
        SHOP_NAME,
    ),
)
