"""All four sandboxes on one port: `/shopee`, `/lazada`, `/facebook` and `/tiktok`, each with a
demo shop."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from app.sandbox import authorize, facebook, facebook_live, lazada, shopee, tiktok
from app.sandbox.authorize import AuthorizeSandbox
from app.sandbox.lazada import LazadaSandbox

GRAPH_VERSION = "v18.0"
LAZADA_ABROAD = ("my", "sg", "ph", "vn", "id")
CONNECT_FIELDS = ("shopId", "shopName", "apiKey", "apiSecret", "accessToken", "refreshToken")


@dataclass
class SandboxSet:
    shopee: shopee.ShopeeSandbox = field(default_factory=shopee.ShopeeSandbox)
    lazada: lazada.LazadaSandbox = field(default_factory=lazada.LazadaSandbox)
    facebook: facebook.FacebookSandbox = field(default_factory=facebook.FacebookSandbox)
    tiktok: tiktok.TikTokSandbox = field(default_factory=tiktok.TikTokSandbox)
    # Lazada's other countries, each its own gateway (Thailand is `lazada`).
    lazada_abroad: dict[str, LazadaSandbox] = field(
        default_factory=lambda: {c: LazadaSandbox(country=c) for c in LAZADA_ABROAD}
    )
    authorize: AuthorizeSandbox = field(init=False)
    facebook_live: facebook_live.FacebookLiveSandbox = field(init=False)

    def __post_init__(self) -> None:
        self.facebook_live = facebook_live.FacebookLiveSandbox(self.facebook)
        self.authorize = AuthorizeSandbox(
            shopee=self.shopee,
            facebook=self.facebook,
            lazada={"th": self.lazada, **self.lazada_abroad},
        )


def base_urls(root: str) -> dict[str, str]:
    """The settings that point the service at sandboxes served under `root`."""
    root = root.rstrip("/")
    return {
        "SHOPEE_BASE_URL": f"{root}/shopee",
        "LAZADA_BASE_URL": f"{root}/lazada/rest",
        "LAZADA_AUTH_URL": f"{root}/lazada/auth/rest",
        "FACEBOOK_GRAPH_URL": f"{root}/facebook/{GRAPH_VERSION}",
        "LAZADA_OAUTH_URL": f"{root}/lazada/oauth/authorize",
        "FACEBOOK_DIALOG_URL": f"{root}/facebook/dialog/oauth",
        "TIKTOK_BASE_URL": f"{root}/tiktok",
        "TIKTOK_AUTH_URL": f"{root}/tiktok/auth",
        "TIKTOK_AUTHORIZE_URL": f"{root}/tiktok/open/authorize",
        **{f"LAZADA_BASE_URL_{c.upper()}": f"{root}/lazada/{c}/rest" for c in LAZADA_ABROAD},
    }


def build_app(sandboxes: SandboxSet) -> Starlette:
    async def index(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "sandboxes": ["shopee", "lazada", "facebook", "tiktok"],
                "settings": base_urls(str(request.base_url)),
            }
        )

    return Starlette(
        routes=[
            Route("/", index),
            # Authorization pages first: they share the platforms' path prefixes.
            *authorize.routes(sandboxes.authorize),
            # Live videos, Messenger and the Send API, before the Graph catch-all.
            *facebook_live.routes(sandboxes.facebook_live),
            *(
                Mount(f"/lazada/{country}", app=lazada.create_app(state))
                for country, state in sandboxes.lazada_abroad.items()
            ),
            Mount("/shopee", app=shopee.create_app(sandboxes.shopee)),
            Mount("/lazada", app=lazada.create_app(sandboxes.lazada)),
            Mount("/facebook", app=facebook.create_app(sandboxes.facebook)),
            Mount("/tiktok", app=tiktok.create_app(sandboxes.tiktok)),
        ]
    )


# Where `omni-sales serve` listens by default: the connect flow's callbacks go there.
SERVICE_URL = "http://127.0.0.1:8000"


def create_sandbox_app(
    public_base_url: str, service_url: str = SERVICE_URL
) -> tuple[Starlette, dict[str, object]]:
    """`public_base_url` is the sandbox's own; `service_url` the Omni Sales service's."""
    sandboxes = SandboxSet()
    demo: dict[str, object] = {
        "settings": base_urls(public_base_url),
        "shopee": shopee.seed_demo(sandboxes.shopee),
        "lazada": lazada.seed_demo(sandboxes.lazada),
        "facebook": facebook.seed_demo(sandboxes.facebook),
        "tiktok": tiktok.seed_demo(sandboxes.tiktok),
    }
    demo["settings"] = {
        **base_urls(public_base_url),
        **operator_settings(demo),
        "PUBLIC_BASE_URL": service_url,
    }
    return build_app(sandboxes), demo


def operator_settings(demo: dict[str, object]) -> dict[str, str]:
    """The demo shops' apps as the operator's, so each connects through its authorization
    page (POST /api/marketplace/connect/{platform}/start) with no token pasted."""
    names = {
        "shopee": ("SHOPEE_PARTNER_ID", "SHOPEE_PARTNER_KEY"),
        "lazada": ("LAZADA_APP_KEY", "LAZADA_APP_SECRET"),
        "facebook": ("META_APP_ID", "META_APP_SECRET"),
        "tiktok": ("TIKTOK_APP_KEY", "TIKTOK_APP_SECRET"),
    }
    settings: dict[str, str] = {}
    for platform, (key_name, secret_name) in names.items():
        credentials = demo[platform]
        assert isinstance(credentials, dict)
        settings[key_name], settings[secret_name] = credentials["apiKey"], credentials["apiSecret"]
    return settings


def describe_demo(demo: dict[str, object]) -> str:
    lines = [
        "Sandbox marketplaces. Point Omni Sales at them with (every setting the pasted and the",
        "authorization-page connect flows need; PUBLIC_BASE_URL is the service's own URL):",
    ]
    settings = demo["settings"]
    assert isinstance(settings, dict)
    lines += [f"  export {key}={value}" for key, value in settings.items()]
    lines += [
        "Authorization pages: POST /api/marketplace/connect/{shopee|lazada|facebook|tiktok}/start,",
        "  open its authorizationUrl; without CONNECT_REDIRECT_URL the callback shows the grant",
        "  for POST /api/marketplace/connect/complete {userId, grant} (same user's token).",
    ]
    lines.append("Demo shops: bodies for POST /api/marketplace/connections (set your userId):")
    for platform in ("shopee", "lazada", "facebook", "tiktok"):
        credentials = demo[platform]
        assert isinstance(credentials, dict)
        body = {"userId": "seller-1", "platformCode": platform}
        body |= {k: v for k, v in credentials.items() if k in CONNECT_FIELDS}
        lines.append(f"  {json.dumps(body, ensure_ascii=False)}")
    lines += [
        "Signed pushes: POST /{shopee|lazada|facebook|tiktok}/_sandbox/webhooks/send with",
        '  {"shopId": ..., "url": "<PUBLIC_BASE_URL>/api/webhooks/marketplace", ...} and',
        '  Shopee "code" (3, 4 with "orderIds"; 1, 2, 12, 6, 8), "lost": true to keep them for',
        '  get_lost_push_message; Lazada "messageType" (0, 10 with "orderIds"; 3, 4, 5, 6, 8);',
        '  Meta "field" ("feed", "messages", "commerce_orders"); TikTok "type" (1, 11) with',
        '  "orderIds" (POST /tiktok/_sandbox/webhooks/send).',
        "A sale on a demo shop: POST /{shopee|lazada|facebook|tiktok}/_sandbox/orders with",
        '  {"count": 1, "sku": "SKU-0001-1", "quantity": 1} (stock falls on that shop).',
    ]
    return "\n".join(lines)
