"""Fixtures shared by every test: the session-scoped private stack and the fault injector that restores it.

Unit tests never ask for ``stack``, so they run without any service. See notes/docker.md and
notes/fault_tolerance.md.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from stack.native.layout import Layout
from stack.native.reaper import reap_orphans
from stack.native.stack import NativeStack
from tests.fault_injector import FaultInjector


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def stack() -> Iterator[NativeStack]:
    """One private stack for the whole run (free ports, so it can run beside `make up`), always torn down."""
    reap_orphans()
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a terminated run still tears down
    native = NativeStack(Layout.create(fixed=False))
    native.up(report=lambda line: print(line, flush=True))
    try:
        yield native
    finally:
        native.down()
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture
def fault(stack: NativeStack) -> Iterator[FaultInjector]:
    injector = FaultInjector(stack)
    try:
        yield injector
    finally:
        injector.restore()
