"""Freeze each dependency (SIGSTOP of its whole process tree) and read /health/ready through Nginx.

The claims (notes/fastapi.md, "Readiness"): ready answers within 2 s whatever hangs; only the primary being gone
makes this instance unready (503); a shared dependency down degrades (200) instead of taking the fleet out; and
after resume the instance is fully ready again without a restart.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stack.native.stack import NativeStack
from tests.fault_injector import FaultInjector
from tests.polling import wait_for
from tests.probes import ready

pytestmark = pytest.mark.fault
ANSWER_WITHIN_S = 2.0


@pytest.mark.parametrize(
    ("service", "http_status", "overall"),
    [
        ("postgres", 503, "down"),
        ("replica", 200, "degraded"),
        ("redis", 200, "degraded"),
        ("rabbitmq", 200, "degraded"),
    ],
)
def test_paused_dependency_is_reported_and_recovers(
    stack: NativeStack, fault: FaultInjector, service: str, http_status: int, overall: str
) -> None:
    fault(service, "pause")
    status, body, elapsed = ready(stack)
    assert elapsed < ANSWER_WITHIN_S
    assert status == http_status
    assert body["status"] == overall
    assert body["checks"][service]["status"] == "down"
    others = {name: check["status"] for name, check in body["checks"].items() if name != service}
    assert set(others.values()) == {"up"}, others

    fault(service, "resume")
    wait_for(lambda: ready(stack)[1]["status"] == "ok", timeout_s=20, what=f"ready after {service} resumed")


def test_paused_postgres_freezes_existing_backends_too(stack: NativeStack, fault: FaultInjector) -> None:
    """Like `docker pause`: not just the postmaster — every backend of an open connection is stopped."""
    fault("postgres", "pause")
    states = {pid: Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] for pid in stack.primary.pids}
    assert len(states) > 3  # not exact: the backends of open pooled connections come and go
    assert set(states.values()) == {"T"}, states


def test_cut_redis_degrades_then_heals(stack: NativeStack, fault: FaultInjector) -> None:
    fault("redis", "cut")
    status, body, elapsed = ready(stack)
    assert (status, body["checks"]["redis"]["status"]) == (200, "down")
    assert elapsed < ANSWER_WITHIN_S
    fault("redis", "heal")
    wait_for(lambda: ready(stack)[1]["status"] == "ok", timeout_s=20, what="ready after redis healed")
