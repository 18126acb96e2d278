"""The app behind Nginx stops or stalls: users get a clear problem+json 502/504, never a hang.

See notes/nginx.md ("Failure modes").
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

import pytest

from stack.native.stack import NativeStack
from tests.fault_injector import FaultInjector
from tests.probes import http

pytestmark = pytest.mark.fault
PROXY_READ_TIMEOUT_S = 5.0


def assert_problem(status: int, headers: Mapping[str, str], body: bytes, expected: int) -> None:
    assert status == expected
    assert headers["Content-Type"].startswith("application/problem+json")
    problem = json.loads(body)
    assert problem["status"] == expected
    assert problem["request_id"] == headers["X-Request-ID"]


def test_app_stopped_gives_502_problem_json(stack: NativeStack, fault: FaultInjector) -> None:
    fault("app", "stop")
    began = time.monotonic()
    status, headers, body = http("GET", f"{stack.nginx.url}/health/live")
    assert_problem(status, headers, body, 502)
    assert time.monotonic() - began < 2.0  # refused upstream fails at once, no timeout wait


def test_app_slower_than_proxy_timeout_gives_504_problem_json(stack: NativeStack, fault: FaultInjector) -> None:
    fault("app", "slow", int(PROXY_READ_TIMEOUT_S * 1000) + 2000)
    began = time.monotonic()
    status, headers, body = http("GET", f"{stack.nginx.url}/health/live", timeout_s=15)
    elapsed = time.monotonic() - began
    assert_problem(status, headers, body, 504)
    assert elapsed == pytest.approx(PROXY_READ_TIMEOUT_S, abs=1.5)
