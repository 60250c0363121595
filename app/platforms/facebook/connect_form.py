"""The Facebook Shop connect form: what a seller fills in, and how each value is checked."""

from __future__ import annotations

from app.platforms.connect_form import DIGITS, SHOP_NAME, FieldSpec, PlatformSpec, ScopeSpec
from app.platforms.types import PlatformCode

CONNECT_FORM = PlatformSpec(
    numeric_shop_id=True,
    code=PlatformCode.FACEBOOK,
    name="Facebook Shop",
    required=(
        FieldSpec(
            "shopId",
            "Facebook Page ID",
            "The numeric id of the Page that owns the shop",
            DIGITS,
            "shopId must be the numeric Facebook Page id",
        ),
        FieldSpec(
            "apiKey",
            "App ID",
            "Your Meta app's id",
            DIGITS,
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
    optional=(SHOP_NAME,),
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
)

# Named by the original guide, but no such permission exists: asking Meta's login dialog for it
# would fail the whole dialog ("Invalid Scopes").
_NOT_A_PERMISSION = frozenset({"commerce_management_api"})
# The permissions the login dialog asks for (the connect flow).
LOGIN_SCOPES = tuple(s.name for s in CONNECT_FORM.scopes if s.name not in _NOT_A_PERMISSION)
