"""Transitional shim: the old names, mapped onto the one job runtime (`app.jobs.outbox`).

Kept only so branches written against the old names merge cleanly; new code calls
`app.jobs.outbox.enqueue` directly. Delete once nothing imports it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.jobs.outbox import enqueue


def defer_job(
    session: AsyncSession,
    function: str,
    *args: str,
    job_id: str,
    defer_seconds: float = 0.0,
) -> None:
    """`enqueue` with the old call's job id as the dedupe key."""
    enqueue(session, function, *args, dedupe_key=job_id, defer_seconds=defer_seconds)


def install_job_sender(redis: Any) -> None:
    """No-op: every process's outbox relay sends the jobs (nothing to install)."""
