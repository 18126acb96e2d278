"""Replication lag on demand: pause replay on the real replica, write on the primary, watch lag grow and drain.

See notes/db_scaling.md ("Replication lag").
"""

from __future__ import annotations

import pytest

from stack.native.stack import NativeStack
from tests.fault_injector import FaultInjector
from tests.polling import wait_for

pytestmark = pytest.mark.fault


def test_paused_replay_builds_lag_that_drains_on_resume(stack: NativeStack, fault: FaultInjector) -> None:
    replica = stack.replica
    wait_for(lambda: replica.lag_bytes() == 0, timeout_s=10, what="replica caught up before the test")
    fault("replica", "pause_replay")
    stack.primary.sql(
        "create table if not exists lag_probe (id bigint); insert into lag_probe select generate_series(1, 2000)",
        database="refstack",
    )
    assert replica.lag_bytes() > 0  # not exact: WAL bytes vary with what the server writes besides the change
    assert replica.sql("select to_regclass('public.lag_probe') is null", database="refstack") == "t"  # stale read

    fault("replica", "resume_replay")
    wait_for(lambda: replica.lag_bytes() == 0, timeout_s=10, what="lag back to 0 after resume")
    assert replica.sql("select count(*) from lag_probe", database="refstack") == "2000"
    stack.primary.sql("drop table lag_probe", database="refstack")
