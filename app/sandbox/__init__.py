"""Simulated Shopee, Lazada and Meta servers speaking the wire protocol the clients use."""
