"""Liveness and readiness: is this process alive, and can it serve traffic right now?

Why two probes: ``/health/live`` touches nothing, so a slow database never gets a healthy process restarted.
``/health/ready`` checks every dependency concurrently, each under ``health_check_timeout_s``, so it answers within
about that bound even when a server is frozen (a SIGSTOPped server still completes TCP handshakes and then never
replies). Only the primary decides 503: without it this instance cannot take writes, and another instance might.
Replica, Redis and RabbitMQ are shared by every instance, so failing readiness for them would pull the whole fleet
out of the load balancer at once; they report "degraded" with 200 and the code paths do without them (reads go
to the primary; nothing publishes to RabbitMQ yet). See notes/fastapi.md, "Readiness".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.api.deps import StateDep
from app.db.engines import ping

REQUIRED = "postgres"
ERROR_CHARS = 300

Probe = Callable[[], Awaitable[object]]


class DependencyCheck(BaseModel):
    status: Literal["up", "down"]
    latency_ms: float
    error: str | None


class Readiness(BaseModel):
    status: Literal["ok", "degraded", "down"]
    checks: dict[str, DependencyCheck]


class Liveness(BaseModel):
    status: Literal["ok"]


def describe(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"TimeoutError: no answer within {timeout_s} s"
    return f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]


async def run_check(probe: Probe, timeout_s: float) -> DependencyCheck:
    """Run one probe under its own deadline; every failure, a timeout included, is a result, not an exception."""
    started = time.perf_counter()
    error: str | None = None
    try:
        async with asyncio.timeout(timeout_s):
            await probe()
    except Exception as exc:
        error = describe(exc, timeout_s)
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    return DependencyCheck(status="down" if error else "up", latency_ms=latency_ms, error=error)


def overall(checks: Mapping[str, DependencyCheck]) -> Literal["ok", "degraded", "down"]:
    """Pure rule: the required primary down → "down"; anything else down → "degraded"; else "ok"."""
    if checks[REQUIRED].status == "down":
        return "down"
    return "degraded" if any(check.status == "down" for check in checks.values()) else "ok"


def build_health_router() -> APIRouter:
    api = APIRouter(prefix="/health", tags=["health"])

    @api.get("/live")
    async def live() -> Liveness:
        return Liveness(status="ok")

    @api.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
    async def ready(state: StateDep) -> JSONResponse:
        engines = state["engines"]
        probes: dict[str, Probe] = {
            REQUIRED: partial(ping, engines.primary),
            "replica": partial(ping, engines.replica),
            "redis": state["redis"].ping,
            "rabbitmq": state["amqp"].round_trip,
        }
        timeout_s = state["settings"].health_check_timeout_s
        results = await asyncio.gather(*(run_check(probe, timeout_s) for probe in probes.values()))
        checks = dict(zip(probes, results, strict=True))
        report = Readiness(status=overall(checks), checks=checks)
        return JSONResponse(report.model_dump(), status_code=503 if report.status == "down" else 200)

    return api
