"""One OS process the stack spawned: start it, wait for it, freeze it, end it — always by its recorded PID.

Why a class of its own: every service needs the same careful process handling (own session so Ctrl-C in the
terminal does not reach it twice, a log file to quote when it fails, freezing the whole process tree because
PostgreSQL runs one process per connection, reaping so no zombie is left). See notes/docker.md.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from stack.base import StackError

POLL_S = 0.05


def _proc_state(pid: int) -> str | None:
    """The kernel's one-letter state of ``pid`` (``Z`` zombie, ``T`` stopped), or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def start_time(pid: int) -> int | None:
    """Clock ticks since boot when ``pid`` started: with the PID, an identity that survives PID reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def pid_alive(pid: int) -> bool:
    state = _proc_state(pid)
    return state is not None and state not in ("Z", "X")


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, parents first (read from /proc, which sees through setsid())."""
    tree: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop(0)
        if not pid_alive(current):
            continue
        tree.append(current)
        children = Path(f"/proc/{current}/task/{current}/children")
        try:
            todo.extend(int(c) for c in children.read_text().split())
        except FileNotFoundError:
            continue
    return tree


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout_s: float,
    what: str,
    watch: ServiceProcess | None = None,
) -> None:
    """Poll ``condition`` until it holds; fail fast if the watched process died; name it and quote its log."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition() and (watch is None or watch.alive()):  # a port answered, and by our process
            return
        if watch is not None and not watch.alive():
            raise StackError(f"{what}: process exited (code {watch.exit_code()}).\n{watch.log_tail()}")
        if time.monotonic() > deadline:
            tail = watch.log_tail() if watch is not None else ""
            raise StackError(f"{what}: not ready after {timeout_s:.0f} s.\n{tail}")
        time.sleep(POLL_S)


class ServiceProcess:
    """A foreground child in its own session, logging to ``log_path``; it may also be adopted by PID."""

    def __init__(
        self,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.user = user
        self.cwd = cwd
        self.pid: int | None = None
        self._popen: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                user=self.user,
                group=self.user,
                start_new_session=True,
            )
        self.pid = self._popen.pid

    def adopt(self, pid: int | None) -> None:
        """Take over a process another stack command started (``python -m stack fault`` runs elsewhere)."""
        self.pid = pid
        self._popen = None

    def alive(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        return self.pid is not None and pid_alive(self.pid)

    def exit_code(self) -> int | None:
        return self._popen.poll() if self._popen is not None else None

    def tree(self) -> list[int]:
        return process_tree(self.pid) if self.pid is not None and self.alive() else []

    def send(self, sig: signal.Signals, pid: int | None = None) -> None:
        target = pid if pid is not None else self.pid
        if target is None:
            return
        try:
            os.kill(target, sig)
        except ProcessLookupError:
            return

    def freeze(self) -> None:
        """SIGSTOP the root first (no new children), then every descendant — what ``docker pause`` does."""
        root = self.tree()
        for pid in root:
            self.send(signal.SIGSTOP, pid)
        for pid in self.tree():
            self.send(signal.SIGSTOP, pid)
        wait_until(self.frozen, timeout_s=5, what=f"freeze {self.argv[0]}")

    def frozen(self) -> bool:
        """Signals are delivered asynchronously: a process on another CPU may still run for a moment."""
        return all(_proc_state(pid) in ("T", "t", None) for pid in self.tree())

    def thaw(self) -> None:
        """SIGCONT the children first, the root last, so the root never sees a frozen child as hung."""
        for pid in reversed(self.tree()):
            self.send(signal.SIGCONT, pid)

    def end(self, sig: signal.Signals = signal.SIGTERM, *, timeout_s: float = 15.0, pid: int | None = None) -> None:
        """Send ``sig`` (to ``pid`` if given, else the root), wait for the root to exit, SIGKILL the tree if not."""
        if not self.alive():
            self._reap()
            return
        self.thaw()
        self.send(sig, pid)
        deadline = time.monotonic() + timeout_s
        while self.alive() and time.monotonic() < deadline:
            time.sleep(POLL_S)
        if self.alive():
            for straggler in self.tree():
                self.send(signal.SIGKILL, straggler)
            wait_until(lambda: not self.alive(), timeout_s=5.0, what=f"kill {self.argv[0]}")
        self._reap()

    def _reap(self) -> None:
        if self._popen is not None:
            self._popen.wait()

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return f"(no log at {self.log_path})"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"last lines of {self.log_path}:\n{tail}"
