"""A command started as PID 1 of new PID, mount, UTS, IPC and network namespaces, seen from the host.

This is what `docker run` does before anything else, done with util-linux's `unshare`: `--fork` makes the command
a child, so it is the first process of the new PID namespace, and `--mount-proc` gives it a /proc of its own so it
sees only its namespace's processes. From the host, the same process has an ordinary PID (a child of `unshare`),
which is what `docker stop` signals and what the lab signals. `--kill-child` ties the namespace's life to
`unshare`, and leaving the `with` block kills PID 1 by its host PID, which ends every process in the namespace.
See notes/docker.md.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from lab.container.refusal import KernelRefusedError

REPO = Path(__file__).resolve().parents[2]
UNSHARE = ("unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--mount", "--uts", "--ipc", "--net")
START_DEADLINE_S = 5.0
STOP_DEADLINE_S = 5.0


def workload(*arguments: str) -> list[str]:
    """The argv of `python -m lab.container.workload ...`; run with the repository as working directory."""
    return [sys.executable, "-m", "lab.container.workload", *arguments]


def exit_code(returncode: int) -> int:
    """The exit code a shell or `docker ps` shows: 128 + the signal's number for a process a signal ended."""
    return 128 - returncode if returncode < 0 else returncode


def zombie_children(pid: int) -> int:
    """How many zombies (state Z) have ``pid`` as their parent, from the host's /proc."""
    count = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        state, parent = fields[0], int(fields[1])
        count += state == "Z" and parent == pid
    return count


class NamespacedProcess:
    """`unshare ... command` with the host PID of the namespace's PID 1 and its stdout read line by line."""

    def __init__(self, command: Sequence[str]) -> None:
        self.command = [*UNSHARE, *command]
        self.host_pid = 0
        self._unshare: subprocess.Popen[bytes] | None = None
        self._pending = b""

    @property
    def unshare(self) -> subprocess.Popen[bytes]:
        if self._unshare is None:
            raise RuntimeError("the namespaced process is not started; use it in a with block")
        return self._unshare

    def __enter__(self) -> NamespacedProcess:
        self._unshare = subprocess.Popen(self.command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        children = Path(f"/proc/{self.unshare.pid}/task/{self.unshare.pid}/children")
        deadline = time.monotonic() + START_DEADLINE_S
        while not self.host_pid:
            if self.unshare.poll() is not None:
                reason = self.stderr() or f"unshare exited with {self.unshare.returncode}"
                self.stop()
                raise KernelRefusedError(reason)
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"unshare {self.unshare.pid} started no child in {START_DEADLINE_S} s")
            pids = children.read_text().split() if children.exists() else []
            self.host_pid = int(pids[0]) if pids else 0
            if not self.host_pid:
                time.sleep(0.005)  # sleep-ok: poll interval while unshare forks PID 1
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def stderr(self) -> str:
        stream = self.unshare.stderr
        return stream.read().decode(errors="replace").strip() if stream and self.unshare.poll() is not None else ""

    def read_line(self, timeout_s: float) -> str:
        """The next line PID 1 (or anything in its namespace) printed; fail after ``timeout_s`` or at end of output."""
        stream = self.unshare.stdout
        if stream is None:
            raise RuntimeError("PID 1's stdout is not a pipe")
        deadline = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as selector:
            selector.register(stream, selectors.EVENT_READ)
            while b"\n" not in self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    raise TimeoutError(f"no line from {self.command} in {timeout_s} s")
                chunk = os.read(stream.fileno(), 65536)
                if not chunk:
                    self.unshare.wait(STOP_DEADLINE_S)
                    raise RuntimeError(f"{self.command} ended without a line: {self.stderr()}")
                self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return line.decode()

    def signal(self, signum: int) -> None:
        """Send ``signum`` to PID 1 from the host, as `docker kill --signal` (and `docker stop`) do."""
        os.kill(self.host_pid, signum)

    def wait(self, timeout_s: float) -> int | None:
        """PID 1's exit code as a shell shows it (unshare passes it on); None if it still runs after ``timeout_s``."""
        try:
            return exit_code(self.unshare.wait(timeout_s))
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """SIGKILL PID 1 by its host PID (the kernel then kills its whole namespace), reap `unshare`, close pipes."""
        if self._unshare is None:
            return
        if self._unshare.poll() is None:
            for pid in (p for p in (self.host_pid, self._unshare.pid) if p > 0):  # never 0: the own process group
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                break
            self._unshare.wait(STOP_DEADLINE_S)
        for stream in (self._unshare.stdout, self._unshare.stderr):
            if stream:
                stream.close()
