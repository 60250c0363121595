"""Credentials at rest: Fernet with several keys; the first encrypts, all decrypt (rotation)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class CredentialCipher:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("CREDENTIALS_ENCRYPTION_KEYS is empty")
        try:
            self._fernets = [Fernet(key.encode()) for key in keys]
        except (ValueError, TypeError) as exc:
            raise ValueError(
                "CREDENTIALS_ENCRYPTION_KEYS must be url-safe base64 Fernet keys (32 bytes)"
            ) from exc
        self._multi = MultiFernet(self._fernets)

    def encrypt(self, plaintext: str) -> str:
        return self._multi.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._multi.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("credential cannot be decrypted with any configured key") from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt with the first key (no-op cost for rows already under it is one decrypt)."""
        return self._multi.rotate(token.encode()).decode()

    def is_current(self, token: str) -> bool:
        try:
            self._fernets[0].decrypt(token.encode())
        except InvalidToken:
            return False
        return True

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()


def mask_secret(value: str | None) -> str | None:
    """At most the last 4 characters, and fewer for short values, so a mask never reveals most
    of a secret."""
    if value is None:
        return None
    visible = 4 if len(value) >= 12 else 0
    return "****" + (value[-visible:] if visible else "")
