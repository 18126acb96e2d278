"""What every native service shares: the fault verbs on top of one recorded process and one proxy route.

Each concrete service only says how to prepare its folder, which command runs it, how to tell it is ready and
which signal stops it fast. See notes/docker.md and notes/fault_tolerance.md.
"""

from __future__ import annotations

import signal
import urllib.request
from pathlib import Path

from stack.native.fault_proxy import send_command
from stack.native.layout import Layout
from stack.native.process import ServiceProcess, wait_until


def http_ok(url: str, timeout_s: float = 1.0) -> bool:
    """True when ``url`` answers 200 within the timeout (readiness polls must never hang)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - loopback URL we built
            return bool(response.status == 200)
    except OSError:
        return False


class NativeService:
    """A private service: one recorded process, an optional fault proxy route, and the verbs of stack.base."""

    name: str = ""
    stop_signal: signal.Signals = signal.SIGTERM
    start_timeout_s: float = 60.0  # generous: a 2-core machine starting seven services at once is slow
    proxied: bool = True

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.port = layout.ports[self.name]
        self.dir: Path = layout.dir(self.name)
        self.process = self._process()

    # -- what a concrete service defines -------------------------------------------------------------
    def _process(self) -> ServiceProcess:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Create what the first start needs (data directory, config). Called only while not yet prepared."""

    def _prepared(self) -> bool:
        return True

    def _stop_pid(self) -> int | None:
        """The PID that takes the stop signal (a wrapper script may sit above the real server)."""
        return self.process.pid

    # -- addresses -------------------------------------------------------------------------------------
    @property
    def client_port(self) -> int:
        """The port clients use: the fault proxy's, so slow/cut reach them."""
        return self.layout.ports[f"proxy_{self.name}"] if self.proxied else self.port

    @property
    def url(self) -> str:
        raise NotImplementedError

    @property
    def pids(self) -> list[int]:
        return self.process.tree()

    # -- verbs -------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self.process.alive():
            return
        if not self._prepared():
            self._prepare()
        self.process.spawn()
        wait_until(self._ready, timeout_s=self.start_timeout_s, what=f"{self.name} start", watch=self.process)

    def stop(self) -> None:
        self.process.end(self.stop_signal, pid=self._stop_pid())

    def restart(self) -> None:
        self.stop()
        self.start()

    def pause(self) -> None:
        self.process.freeze()

    def resume(self) -> None:
        self.process.thaw()

    def slow(self, ms: int) -> None:
        self._proxy(f"slow {self.name} {int(ms)}")

    def cut(self) -> None:
        self._proxy(f"cut {self.name}")

    def heal(self) -> None:
        self._proxy(f"heal {self.name}")

    def _proxy(self, command: str) -> None:
        if not self.proxied:
            raise NotImplementedError(f"{self.name} has no fault proxy in front of it (it is the edge)")
        send_command(self.layout.ports["control"], command)

    def close(self) -> None:
        """Final teardown: stop, and end any helper process the service owns."""
        self.stop()
