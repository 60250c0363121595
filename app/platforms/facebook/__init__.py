"""Meta (Facebook Shop) Commerce: Graph API client, signing and mapping."""

from app.platforms.facebook.client import FacebookClient

__all__ = ["FacebookClient"]
