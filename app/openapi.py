"""The committed `openapi.yaml` is generated from the app by this module."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import SecretStr

from app.config import Settings
from app.crypto import CredentialCipher


def openapi_document() -> dict[str, Any]:
    from app.main import create_app

    # The schema does not depend on secrets; placeholders let the app be built without any.
    settings = Settings(
        AUTH_JWT_SECRET=SecretStr("openapi-generation"),
        CREDENTIALS_ENCRYPTION_KEYS=[SecretStr(CredentialCipher.generate_key())],
        CORS_ORIGINS=[],
    )
    return create_app(settings).openapi()


def openapi_yaml() -> str:
    text: str = yaml.safe_dump(openapi_document(), sort_keys=False, allow_unicode=True, width=100)
    return text
