"""What every native service shares: the fault verbs on top of one recorded process and one proxy route.

Each concrete service only says how to prepare its folder, which command runs it, how to tell it is ready and
which signal stops it fast. A service is a server (clients reach it; ``slow``/``cut`` act on that hop) or a client
of the others (``fault_client``: the app, its worker, Nginx), whose processes join the stack's cgroup so that a
fault can divert their links alone (stack/native/hops.py). See notes/docker.md and notes/fault_tolerance.md.
"""

from __future__ import annotations

import signal
import urllib.request
from pathlib import Path

from stack.native.fault_proxy import send_command
from stack.native.hops import FAULT, HopRouting
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
    fault_client: bool = True  # a server class sets False: only clients' links are diverted
    settle_s: float = 0.0  # how long a diversion waits for its clients to close the links it dropped (hops.py)

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.port = layout.ports[self.name]
        self.dir: Path = layout.dir(self.name)
        self.hops = HopRouting(layout.base)
        self.process = self._process()
        if self.fault_client and layout.divert_on_demand:
            self.process.argv = self.hops.enrol(self.process.argv)

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
        """The port ``url`` names: the fault proxy's, so slow/cut reach any client that uses it. The stack's own
        clients (app, worker, Nginx) use the real port instead and are diverted on demand (stack/native/hops.py)."""
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
        self._divert()

    def cut(self) -> None:
        self._proxy(f"cut {self.name}")
        self._divert()

    def heal(self) -> None:
        self._proxy(f"heal {self.name}")
        if self.layout.divert_on_demand:
            self.hops.restore(self.port, FAULT)

    def _proxy(self, command: str) -> None:
        if not self.proxied:
            raise NotImplementedError(f"{self.name} has no fault proxy in front of it (it is the edge)")
        send_command(self.layout.ports["control"], command)

    def _divert(self, why: str = FAULT) -> None:
        """Send the clients' links to this service through its proxy (a no-op where they always go through it)."""
        if self.layout.divert_on_demand:
            self.hops.divert(self.port, self.layout.ports[f"proxy_{self.name}"], why, settle_s=self.settle_s)

    def close(self) -> None:
        """Final teardown: stop, and end any helper process the service owns."""
        self.stop()
