"""The one periodic-job runner: a run that raises is logged with the job's name and counted, and the loop goes on;
leaving the ``async with`` cancels the job. See notes/fastapi.md, "App factory and lifespan".
"""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from app.background import PeriodicJob, running
from app.observability.metrics import build_job_metrics


def runs(registry: CollectorRegistry, job: str, outcome: str) -> float | None:
    return registry.get_sample_value("background_job_runs_total", {"job": job, "outcome": outcome})


async def test_a_check_that_raises_once_keeps_running() -> None:
    registry = CollectorRegistry()
    calls = 0
    third_run = asyncio.Event()

    async def check() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the replica answered garbage once")
        if calls == 3:
            third_run.set()
            await asyncio.Event().wait()  # the third run is still going when the app shuts down

    with capture_logs() as logs:
        async with running(PeriodicJob("replica-health", 0.001, check, immediately=True), build_job_metrics(registry)):
            async with asyncio.timeout(5):
                await third_run.wait()
    assert calls == 3
    assert runs(registry, "replica-health", "failed") == 1.0
    assert runs(registry, "replica-health", "ok") == 1.0  # the third run was cancelled, not counted
    failures = [entry for entry in logs if entry["event"] == "background_job_failed"]
    assert [(entry["job"], entry["log_level"]) for entry in failures] == [("replica-health", "error")]


async def test_a_job_not_run_immediately_waits_one_interval_and_is_cancelled_on_exit() -> None:
    calls = 0

    async def sweep() -> int:
        nonlocal calls
        calls += 1
        return 0

    async with running(PeriodicJob("hold-sweeper", 3600, sweep), build_job_metrics(CollectorRegistry())) as task:
        await asyncio.sleep(0)  # sleep-ok: one turn of the loop, to let the task start
    assert task.cancelled()
    assert calls == 0
