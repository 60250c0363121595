"""Lazada Open Platform (Thailand): signing, client and mapping."""
