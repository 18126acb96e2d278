"""The ``fault`` fixture's promise: whatever a test broke, and however it ended, the stack is whole afterwards.

See notes/fault_tolerance.md ("Breaking things on purpose").
"""

from __future__ import annotations

import pytest

from stack.native.stack import NativeStack
from tests.fault_injector import FaultInjector
from tests.probes import http, ready

pytestmark = pytest.mark.fault


def failing_test_body(injector: FaultInjector) -> None:
    """Break five services in five ways, then fail, as a test under the fixture might."""
    try:
        injector("redis", "pause")
        injector("rabbitmq", "cut")
        injector("payments", "stop")
        injector("app", "slow", 3000)
        injector("replica", "pause_replay")
        raise AssertionError("the test under the fixture failed")
    finally:
        injector.restore()


def test_restore_undoes_every_kind_of_damage_after_a_failing_test(stack: NativeStack) -> None:
    with pytest.raises(AssertionError, match="the test under the fixture failed"):
        failing_test_body(FaultInjector(stack))
    status, body, elapsed = ready(stack)
    assert (status, body["status"]) == (200, "ok")
    assert elapsed < 1.0  # the app is no longer slowed
    assert stack.payments.process.alive()
    assert http("GET", f"{stack.payments.direct_url}/health")[0] == 200
    assert stack.replica.sql("select pg_get_wal_replay_pause_state()") == "not paused"
