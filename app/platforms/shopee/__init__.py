"""Shopee Open Platform v2: signing, client and mapping (reference §1)."""
