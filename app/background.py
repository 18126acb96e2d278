"""The one runner of periodic jobs (the hold sweeper, the payment reconciler, the replica health check, and the
outbox relay to come): each job is a ``run_once`` coroutine, run every ``interval_s`` for as long as the app lives.

Why one runner: three loops in three shapes had three ways to fail; one of them had no guard, so a single
unexpected exception ended the replica check silently until shutdown. Here every run's outcome is counted
(``background_job_runs_total{job,outcome}`` at ``/metrics``), an unexpected error is logged with the job's name and
the loop goes on (a database outage must not end the sweeper for good), and on the way out the task is cancelled
and awaited, so shutdown never leaves a job running against closed pools. See notes/fastapi.md, "App factory and
lifespan".
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

import structlog

from app.observability.metrics import JobMetrics

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PeriodicJob:
    """``run_once`` every ``interval_s``; the first run at start (``immediately``) or one interval after it (so a
    worker that is still starting puts no load on the database)."""

    name: str
    interval_s: float
    run_once: Callable[[], Awaitable[object]]
    immediately: bool = False


async def _run_forever(job: PeriodicJob, metrics: JobMetrics) -> None:
    if not job.immediately:
        await asyncio.sleep(job.interval_s)  # sleep-ok: the job's schedule, not a synchronisation
    while True:
        try:
            await job.run_once()
        except Exception:  # the loop must outlive any one failure; the log and the counter say what failed
            metrics.observe(job=job.name, outcome="failed")
            log.exception("background_job_failed", job=job.name)
        else:
            metrics.observe(job=job.name, outcome="ok")
        await asyncio.sleep(job.interval_s)  # sleep-ok: the job's schedule, not a synchronisation


@asynccontextmanager
async def running(job: PeriodicJob, metrics: JobMetrics) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``job`` as a background task for the duration of the ``async with``; cancel it and wait for it on exit."""
    task = asyncio.create_task(_run_forever(job, metrics), name=job.name)
    try:
        yield task
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
