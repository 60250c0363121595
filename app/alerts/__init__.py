"""Operator alerts: an outbox delivered as signed Standard Webhooks."""
