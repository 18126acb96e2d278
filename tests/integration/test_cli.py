"""``python -m stack``: misuse exits 2 listing what is valid; faults applied from another process take effect.

See notes/docker.md ("Breaking things from a terminal").
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from stack.base import StackError
from stack.native.process import pid_alive
from stack.native.stack import NativeStack
from tests.polling import wait_for
from tests.probes import ready

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stack", *args], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )


def test_unknown_service_exits_2_listing_services() -> None:
    result = run_cli("fault", "mysql", "stop")
    assert result.returncode == 2
    assert "postgres, replica, pgbouncer, redis, rabbitmq, payments, app, worker, nginx" in result.stderr


def test_unknown_verb_exits_2_listing_verbs() -> None:
    result = run_cli("fault", "redis", "explode")
    assert result.returncode == 2
    assert "stop, start, restart, pause, resume, slow, cut, heal" in result.stderr
    assert "lag" not in result.stderr  # replica-only verbs are offered for the replica only
    assert "lag, unlag, promote" in run_cli("fault", "replica", "explode").stderr


def test_slow_needs_milliseconds() -> None:
    assert run_cli("fault", "redis", "slow").returncode == 2
    assert run_cli("fault", "redis", "slow", "fast").returncode == 2


@pytest.mark.fault
def test_fault_from_another_process_and_restore(stack: NativeStack) -> None:
    state = str(stack.state_path)
    try:
        assert run_cli("--state", state, "fault", "redis", "pause").returncode == 0
        status, body, _ = ready(stack)
        assert (status, body["checks"]["redis"]["status"]) == (200, "down")
    finally:
        assert run_cli("--state", state, "fault", "redis", "resume").returncode == 0
    wait_for(lambda: ready(stack)[1]["status"] == "ok", timeout_s=20, what="ready after CLI resume")
    assert json.loads(stack.state_path.read_text())["owner"][0] == os.getpid()  # the CLI did not take ownership
    status_lines = run_cli("--state", state, "status").stdout.splitlines()
    assert len(status_lines) == 9  # one line per service, the worker included
    assert all(" up " in line for line in status_lines)


def start_up_in_foreground(*options: str) -> tuple[subprocess.Popen[str], Path, list[int]]:
    """``python -m stack up --free-ports`` until it says it is up: the process, its folder, its recorded PIDs."""
    up = subprocess.Popen(
        [sys.executable, "-m", "stack", "up", "--free-ports", *options],
        cwd=REPO,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert up.stdout is not None
    lines = []
    for line in up.stdout:
        lines.append(line)
        if line.startswith("refstack is up") or len(lines) > 200:
            break
    if not any(line.startswith("refstack is up") for line in lines):
        up.send_signal(signal.SIGINT)
        up.wait(timeout=60)
        up.stdout.close()
        pytest.fail("".join(lines))
    base = Path(lines[0].split(" in ")[-1].strip())
    recorded = json.loads((base / "state.json").read_text())["processes"]
    return up, base, [identity[0] for identity in recorded.values() if identity is not None]


@pytest.mark.slow
def test_up_in_the_foreground_stops_everything_on_ctrl_c(stack: NativeStack) -> None:
    up, base, pids = start_up_in_foreground("--through-pgbouncer")
    assert len(pids) == 11  # nine services, epmd and the fault proxy
    assert up.stdout is not None
    with up.stdout:
        pooler = NativeStack.from_state(base / "state.json").pgbouncer

        def app_connected_through_pgbouncer() -> bool:
            try:
                return any(client["database"] == "refstack" for client in pooler.admin("SHOW CLIENTS"))
            except StackError:  # the admin console refused one probe: ask again until the deadline
                return False

        wait_for(app_connected_through_pgbouncer, timeout_s=40, what="the app's connections in PgBouncer")
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0
        assert "stopped" in up.stdout.read()
    assert [pid for pid in pids if pid_alive(pid)] == []
    assert not base.exists()


@pytest.mark.slow
def test_down_from_another_terminal_stops_everything_and_ends_up(stack: NativeStack) -> None:
    up, base, pids = start_up_in_foreground()
    assert up.stdout is not None
    with up.stdout:
        assert run_cli("--state", str(base / "state.json"), "down").returncode == 0
        assert up.wait(timeout=30) == 0  # the foreground `up` notices and exits by itself
    assert [pid for pid in pids if pid_alive(pid)] == []
    assert not base.exists()
