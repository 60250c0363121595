"""Status and trigger values shared by the models, services and API schemas (so OpenAPI lists
them). Columns store the plain strings."""

from __future__ import annotations

from enum import StrEnum


class ConnectionStatus(StrEnum):
    ACTIVE = "active"
    ERROR = "error"  # the marketplace refused a call for a reason the seller must look at
    REAUTH_REQUIRED = "reauth_required"  # credentials refused: not scheduled until new ones
    DISCONNECTED = "disconnected"
    # Made against a marketplace host the settings no longer name: not called (see
    # app/connections/hosts.py) until the setting is restored or the connection moved.
    MISCONFIGURED = "misconfigured"


class SyncStatus(StrEnum):
    RUNNING = "running"
    SUCCESS = "success"
    PARTIAL = "partial"  # finished, but some orders failed; they are retried by the next sync
    FAILED = "failed"


class SyncTrigger(StrEnum):
    MANUAL = "manual"
    SCHEDULE = "schedule"
    WEBHOOK = "webhook"
    RECONCILE = "reconcile"
    CATCH_UP = "catch_up"  # new credentials after a refusal: fetch what was missed
