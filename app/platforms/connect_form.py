"""The shape of a marketplace's connect form: its fields and scopes, checked on create. Each
platform package declares its own form in `connect_form.py`."""

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
    # The shared body field this platform's own word is (TikTok's `appKey` is `apiKey`).
    stands_for: str | None = None

    @property
    def key(self) -> str:
        """The shared name the service reads the value under."""
        return self.stands_for or self.name


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
    # Shopee shop ids and Meta Page ids are numbers: "0409334" and "409334" are one shop.
    numeric_shop_id: bool = False

    def field(self, name: str) -> FieldSpec | None:
        """The field under its shared or its own name."""
        return next(
            (f for f in (*self.required, *self.optional) if name in (f.name, f.stands_for)), None
        )

    def wire_name(self, key: str) -> str:
        """What the form calls the shared field `key` (errors name fields as the form does)."""
        spec = self.field(key)
        return spec.name if spec is not None else key

    def invalid_value(self, name: str, value: str) -> str | None:
        spec = self.field(name)
        if spec is None or spec.pattern is None or re.fullmatch(spec.pattern, value):
            return None
        return spec.pattern_hint or f"{spec.name} has an invalid format"

    def canonical_shop_id(self, shop_id: str) -> str:
        """The form the platform reports the shop id in, so one shop is stored once."""
        shop_id = shop_id.strip()
        if self.numeric_shop_id and shop_id.isdigit():
            return str(int(shop_id))
        return shop_id


DIGITS = r"[0-9]{1,20}"
SHOP_NAME = FieldSpec(
    "shopName", "Shop name", "Shown in Omni Sales; read from the platform if empty"
)
