"""Marketplace clients: one package per marketplace behind the interface in `base.py`."""
