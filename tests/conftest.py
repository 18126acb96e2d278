"""Fixtures shared by every test: the session-scoped private stack and the fault injector that restores it.

Unit tests never ask for ``stack``, so they run without any service. See notes/docker.md and
notes/fault_tolerance.md.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.native.layout import Layout
from stack.native.reaper import reap_orphans
from stack.native.stack import NativeStack
from stack.native.web import UNTHROTTLED
from tests.fault_injector import FaultInjector

# the simulator and closed payments breakers, for the tests that pay; a direct engine on the primary
pytest_plugins = ["tests.fix_payments", "tests.fix_database"]

# Shorter than production so that payment faults resolve in seconds; the production defaults are asserted in
# tests/unit/test_retry_policy.py.
TEST_APP_SETTINGS = {
    "REFSTACK_PAYMENTS_TIMEOUT_S": "0.5",
    "REFSTACK_PAYMENTS_MAX_ATTEMPTS": "3",
    "REFSTACK_PAYMENTS_BACKOFF_BASE_S": "0.05",
    "REFSTACK_PAYMENTS_BACKOFF_MAX_S": "0.2",
    "REFSTACK_PAYMENTS_DEADLINE_S": "2.0",
    "REFSTACK_PAYMENTS_BREAKER_FAIL_MAX": "3",
    "REFSTACK_PAYMENTS_BREAKER_RESET_S": "2.0",
    # the stack's tests of the shared breaker prove sharing, not the scheduler's luck: on a loaded 2-core runner an
    # exchange once outlasted the production 75 ms and the worker went local for a second; the bound itself is
    # proved in process (tests/integration/test_shared_breaker.py, a Redis that never answers)
    "REFSTACK_BREAKER_EXCHANGE_TIMEOUT_S": "1.0",
    # 50 requests in flight over 2 workers must not queue for a connection (load shedding is a 503, see problems.py)
    "REFSTACK_DB_POOL_SIZE": "15",
    # a writer queued behind a row lock gives up fast (tests/integration/test_transaction_timeouts.py)
    "REFSTACK_DB_LOCK_TIMEOUT_MS": "500",
    # above what any one buyer of test_contention.py can win (50 seats over 20 buyers); the cap itself is proved
    # in tests/security/test_api6_business_flows.py
    "REFSTACK_MAX_ACTIVE_HOLDS_PER_USER": "20",
    "REFSTACK_CORS_ALLOW_ORIGINS": '["https://tickets.example"]',
    # the worker's retry tiers in fractions of a second and a small delivery limit, so a message parks within a
    # test (production: 1 s / 10 s / 60 s and 5 deliveries, asserted in tests/unit/test_topology.py)
    "REFSTACK_WORKER_RETRY_DELAYS_S": "[0.2, 0.5, 1.0]",
    "REFSTACK_WORKER_DELIVERY_LIMIT": "3",
    # the worker's inbox pruner every second instead of every minute (tests/integration/test_inbox_pruning.py)
    "REFSTACK_INBOX_PRUNE_INTERVAL_S": "1",
}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


LAST_LOGS = Path(tempfile.gettempdir()) / "refstack-last-test-logs"


def keep_logs(native: NativeStack) -> None:
    """The private folder goes away with the stack; its logs are kept for reading after a failed run."""
    shutil.rmtree(LAST_LOGS, ignore_errors=True)
    shutil.copytree(native.layout.base / "logs", LAST_LOGS, dirs_exist_ok=True)
    print(f"\nservice logs of this run: {LAST_LOGS}")


@pytest.fixture(scope="session")
def stack() -> Iterator[NativeStack]:
    """One private stack for the whole run (free ports, so it can run beside `make up`), always torn down."""
    reap_orphans()
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a terminated run still tears down
    # Every test logs users in and test_contention.py sends 1000 holds, all from 127.0.0.1: the edge's per-IP
    # limits are proved on a second, strict Nginx (tests/security/test_api4_resource_consumption.py).
    native = NativeStack(Layout.create(fixed=False), app_settings=TEST_APP_SETTINGS, edge_limits=UNTHROTTLED)
    native.up(report=lambda line: print(line, flush=True))
    try:
        yield native
    finally:
        keep_logs(native)
        native.down()
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture
def fault(stack: NativeStack) -> Iterator[FaultInjector]:
    injector = FaultInjector(stack)
    try:
        yield injector
    finally:
        injector.restore()
