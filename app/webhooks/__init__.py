"""Marketplace pushes: verified, stored once, processed by the worker."""
