"""Step 5: PID 1 without a SIGTERM handler ignores `docker stop` and leaves zombies; a tiny init fixes both.

The kernel applies no default action to a signal sent to the init process of a PID namespace (from inside, or
from the host for anything but SIGKILL and SIGSTOP). A Python program as PID 1 installs a handler for SIGINT
only, so SIGTERM does nothing and `docker stop` waits its grace period (10 s) before SIGKILL; here the wait is
cut to GRACE_S. Every orphan in the namespace is re-parented to PID 1, and a program that never calls wait() for
children it does not know about leaves them as zombies. The same program under lab/container/tiny_init.py (as
`docker run --init` puts tini there) is PID 2: the init forwards SIGTERM, the program dies of it at once (exit
143 = 128 + 15) and the init reaps every orphan. See notes/docker.md.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from dataclasses import dataclass

from lab.container.namespaced_process import NamespacedProcess, workload, zombie_children
from lab.table import Table

ORPHANS = 3
GRACE_S = 1.0  # docker stop's default is 10 s
LINGER_S = 20.0  # the longest the program waits for a signal before it ends by itself
ZOMBIE_DEADLINE_S = 5.0


@dataclass(frozen=True)
class StopSeen:
    """One `docker stop` by hand: SIGTERM, a bounded grace period, SIGKILL if still running."""

    program_pid: int
    zombies: int
    exit_code: int | None  # None when SIGKILL ended it: unshare 2.38 cannot pass death by SIGKILL on (it exits 1)
    seconds_to_exit: float
    reaped_by_init: int | None

    @property
    def needed_sigkill(self) -> bool:
        return self.exit_code is None

    @property
    def ended_by(self) -> str:
        return "SIGKILL (docker shows 137)" if self.exit_code is None else f"exit code {self.exit_code}"


@dataclass(frozen=True)
class PidOneSeen:
    bare: StopSeen
    under_init: StopSeen

    def table(self) -> Table:
        both = (self.bare, self.under_init)
        rows: list[tuple[str | int | float, ...]] = [
            ("PID of the program in its namespace", *(s.program_pid for s in both)),
            (f"zombies after {ORPHANS} orphans exited", *(s.zombies for s in both)),
            (f"still running {GRACE_S} s after SIGTERM (SIGKILL needed)", *(str(s.needed_sigkill) for s in both)),
            ("seconds from SIGTERM to exit", *(s.seconds_to_exit for s in both)),
            ("how it ended", *(s.ended_by for s in both)),
            ("orphans the init reaped", *("-" if s.reaped_by_init is None else s.reaped_by_init for s in both)),
        ]
        return Table("PID 1: docker stop, zombies, and a tiny init", ("", "program as PID 1", "under tiny init"), rows)


def zombies_settled(pid: int, expected: int) -> int:
    """Poll until ``pid`` has ``expected`` zombie children (they appear as the orphans exit), bounded; the count."""
    deadline = time.monotonic() + ZOMBIE_DEADLINE_S
    while (count := zombie_children(pid)) != expected and time.monotonic() < deadline:
        time.sleep(0.02)  # sleep-ok: poll interval while the orphans exit and are re-parented
    return count


def docker_stop(pid_1: NamespacedProcess) -> tuple[int | None, float]:
    """SIGTERM, wait up to GRACE_S, SIGKILL if still running: (exit code, None if SIGKILL; seconds to the end)."""
    started = time.monotonic()
    pid_1.signal(signal.SIGTERM)
    code = pid_1.wait(GRACE_S)
    if code is not None:
        return code, time.monotonic() - started
    pid_1.signal(signal.SIGKILL)
    if pid_1.wait(GRACE_S) is None:
        raise RuntimeError(f"PID 1 (host PID {pid_1.host_pid}) survived SIGKILL for {GRACE_S} s")
    return None, time.monotonic() - started


def stop_bare() -> StopSeen:
    with NamespacedProcess(workload("orphans", "--count", str(ORPHANS), "--linger", str(LINGER_S))) as pid_1:
        ready = json.loads(pid_1.read_line(timeout_s=10))
        zombies = zombies_settled(pid_1.host_pid, ORPHANS)
        code, seconds = docker_stop(pid_1)
        return StopSeen(ready["pid"], zombies, code, seconds, None)


def stop_under_init() -> StopSeen:
    program = workload("orphans", "--count", str(ORPHANS), "--linger", str(LINGER_S))
    with NamespacedProcess([sys.executable, "-m", "lab.container.tiny_init", "--", *program]) as pid_1:
        ready = json.loads(pid_1.read_line(timeout_s=10))
        zombies = zombies_settled(pid_1.host_pid, 0)
        code, seconds = docker_stop(pid_1)
        report = json.loads(pid_1.read_line(timeout_s=5))
        return StopSeen(ready["pid"], zombies, code, seconds, report["init_reaped_orphans"])


def run() -> PidOneSeen:
    return PidOneSeen(stop_bare(), stop_under_init())
