"""What every job gets: kept as the import path existing code uses; the definitions live in
the job runtime (`app/jobs/context.py`)."""

from app.jobs.context import JobContext, WorkerContext, arq_job

__all__ = ["JobContext", "WorkerContext", "arq_job"]
