"""Omni Sales: one database for a seller's Shopee, Lazada and Facebook Shop orders."""
