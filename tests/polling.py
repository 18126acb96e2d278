"""Deadline-bound polling for tests: the one way a test waits for something it cannot be told about.

Why poll and not sleep: a fixed sleep is either too short on a busy 2-core machine (a flaky failure) or too long
everywhere else (a slow suite). A poll returns as soon as the condition holds and fails at its deadline naming what
it waited for and the last value it saw. ``wait_for`` is for sync tests, ``wait_for_async`` for coroutines; both
call the condition at least once. See notes/fault_tolerance.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_for(condition: Callable[[], T], *, timeout_s: float, what: str, interval_s: float = 0.1) -> T:
    """Call ``condition()`` until it returns something truthy and return that; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        last = condition()
        if last:
            return last
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}; last value: {last!r}")
        time.sleep(interval_s)  # sleep-ok: the poll interval of a deadline-bound wait


async def wait_for_async(
    condition: Callable[[], Awaitable[T]], *, timeout_s: float, what: str, interval_s: float = 0.02
) -> T:
    """Await ``condition()`` until it returns something truthy and return that; fail naming ``what`` at the
    deadline. The event loop runs other tasks between calls."""
    deadline = time.monotonic() + timeout_s
    while True:
        last = await condition()
        if last:
            return last
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}; last value: {last!r}")
        await asyncio.sleep(interval_s)  # sleep-ok: the poll interval of a deadline-bound wait


async def line_starting(process: asyncio.subprocess.Process, prefix: str, *, timeout_s: float) -> str:
    """The rest of the first line of ``process``'s output that starts with ``prefix`` (its log lines come between):
    how a test hears a helper process say it reached a point; fails at the deadline or if the process ends first."""
    assert process.stdout is not None
    async with asyncio.timeout(timeout_s):
        while line := (await process.stdout.readline()).decode():
            if line.startswith(prefix):
                return line.removeprefix(prefix).strip()
    pytest.fail(f"process {process.pid} ended without a {prefix!r} line (exit {await process.wait()})")
