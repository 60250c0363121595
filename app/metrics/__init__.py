"""Deployment-wide Prometheus metrics: import `app.metrics.service` to record (no side effects)."""
