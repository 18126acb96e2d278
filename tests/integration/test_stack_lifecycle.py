"""A second, independent stack starts beside the session one and leaves no process behind.

Also: a stack whose owner was SIGKILLed (a crashed test run) is reaped by recorded PID on the next run.
See notes/docker.md ("How the native provider stands in for compose").
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stack.base import StackError
from stack.native.layout import Layout
from stack.native.process import pid_alive
from stack.native.reaper import reap_orphans
from stack.native.stack import NativeStack
from tests.polling import wait_for
from tests.probes import http

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_full_stack_starts_and_stops_with_no_process_left(stack: NativeStack) -> None:
    lines: list[str] = []
    second = NativeStack(Layout.create(fixed=False))
    try:
        second.up(report=lines.append)
        pids = [pid for svc in second.services.values() for pid in svc.pids]
        pids += [second.fault_proxy.pid or 0, second.rabbitmq.epmd.pid or 0]
        assert http("GET", f"{second.nginx.url}/health/live")[0] == 200
    finally:
        second.down()
    assert len(pids) >= 15  # at least: each service's process tree includes PostgreSQL's backends, which vary
    assert [pid for pid in pids if pid_alive(pid)] == []
    assert not second.layout.base.exists()
    assert {line.split()[0] for line in lines if "ready in" in line} >= {
        "postgres",
        "replica",
        "pgbouncer",
        "redis",
        "rabbitmq",
        "payments",
        "migrations",
        "app",
        "worker",
        "nginx",
    }
    assert lines[-1].startswith("stack up in")


def test_orphaned_stack_of_a_killed_owner_is_reaped_by_recorded_pid(stack: NativeStack) -> None:
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent("""
            import sys, threading
            from stack.native.layout import Layout
            from stack.native.stack import NativeStack
            s = NativeStack(Layout.create(fixed=False))
            s.redis.start()
            s.save_state()
            print(s.redis.process.pid, s.layout.base, flush=True)
            threading.Event().wait()
        """),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert owner.stdout is not None
    with owner.stdout:
        redis_pid_text, base = owner.stdout.readline().split()
    redis_pid = int(redis_pid_text)
    assert pid_alive(redis_pid)
    os.kill(owner.pid, signal.SIGKILL)
    owner.wait()

    reaped = reap_orphans(report=lambda _: None)
    assert Path(base) in reaped
    wait_for(lambda: not pid_alive(redis_pid), timeout_s=5, what="orphaned redis gone")
    assert not Path(base).exists()
    assert stack.redis.process.alive()  # the live session stack was left alone


def test_a_service_that_cannot_start_is_named_with_its_log(stack: NativeStack) -> None:
    """Redis told to listen on a port something else holds: the error names it and quotes its own log."""
    layout = Layout.create(fixed=False)
    clash = NativeStack(layout)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", layout.ports["redis"]))
        squatter.listen()
        try:
            with pytest.raises(StackError) as failure:
                clash.redis.start()
        finally:
            clash.down()
    message = str(failure.value)
    assert message.startswith("redis start: process exited")
    assert "Address already in use" in message
    assert str(layout.base / "logs" / "redis.log") in message
    assert stack.redis.process.alive()
