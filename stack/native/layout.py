"""Where a native stack lives: its private folder and its loopback ports, fixed for ``make up``, free for tests.

Why separate: the same services run twice on one machine (a test run beside a ``make up`` stack), so nothing may
hard-code a port; and the CLI in another process must rebuild the same objects from what was recorded.
See notes/docker.md.
"""

from __future__ import annotations

import secrets
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stack.native.hops import diversion_possible

# Real service ports for `make up`, below the kernel's ephemeral range (32768-60999 here): a port in that range can
# be taken at any moment as the source port of an outgoing connection or handed out to a test stack as "free".
# Proxies and internals take free ports. Never the standard ones.
FIXED_PORTS = {
    "postgres": 21432,
    "replica": 21433,
    "pgbouncer": 21632,
    "redis": 21379,
    "rabbitmq": 21672,
    "payments": 21090,
    "app": 21000,
    "worker": 21081,  # its /health and /metrics; REFSTACK_WORKER_HTTP_PORT's default
    "nginx": 8080,
}
PROXIED = ("postgres", "replica", "pgbouncer", "redis", "rabbitmq", "payments", "app")
INTERNAL = ("rabbitmq_dist", "epmd", "control")
STANDARD_PORTS = frozenset({80, 4369, 5432, 5672, 6379, 8000, 15672, 25672})


# Free ports for test stacks come from below the ephemeral range too: a port the kernel hands out for ``bind(0)`` is
# an ephemeral one, and before the service binds it an outgoing connection of the busy test run may take it as its
# source port (a replica once failed with "could not bind ... Address already in use" that way).
FREE_RANGE = range(22000, 32000)
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port below the ephemeral range that nobody holds now and this process has not handed out."""
    taken = {*FIXED_PORTS.values(), *STANDARD_PORTS, *_handed_out}
    for _ in range(200):
        port = secrets.choice(FREE_RANGE)
        if port in taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free loopback port in {FREE_RANGE.start}-{FREE_RANGE.stop - 1} after 200 tries")


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Layout:
    """The folder and ports of one stack. ``ports`` holds services, ``proxy_<name>`` and internal ports."""

    base: Path
    ports: dict[str, int] = field(default_factory=dict)
    # Clients reach each service on its real port and a fault diverts one hop (stack/native/hops.py); False: they
    # always cross the fault proxy (a stack without root, nft or cgroup v2, or one recorded before this existed).
    divert_on_demand: bool = False

    @classmethod
    def create(cls, *, fixed: bool) -> Layout:
        base = Path(tempfile.mkdtemp(prefix="refstack-"))
        base.chmod(0o711)  # postgres and nginx workers must traverse it
        ports: dict[str, int] = {}
        for name in FIXED_PORTS:
            ports[name] = FIXED_PORTS[name] if fixed else free_port()
        for name in PROXIED:
            ports[f"proxy_{name}"] = free_port()
        for name in INTERNAL:
            ports[name] = free_port()
        layout = cls(base, ports, divert_on_demand=diversion_possible())
        layout.check_ports()
        return layout

    def check_ports(self) -> None:
        clash = sorted(port for port in self.ports.values() if port in STANDARD_PORTS)
        if clash:
            raise ValueError(f"refusing standard ports {clash}: those belong to system-wide services")
        taken = sorted(f"{name}={port}" for name, port in self.ports.items() if port_in_use(port))
        if taken:
            raise ValueError(f"ports already in use: {', '.join(taken)} (is another `make up` running?)")

    def dir(self, name: str) -> Path:
        path = self.base / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def hop_port(self, name: str) -> int:
        """The port the stack's own clients use to reach ``name``: its own, or its fault proxy's when hops are not
        diverted on demand."""
        return self.ports[name] if self.divert_on_demand else self.ports[f"proxy_{name}"]

    def to_json(self) -> dict[str, Any]:
        return {"base": str(self.base), "ports": self.ports, "divert_on_demand": self.divert_on_demand}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Layout:
        """A state file written before a service was added lacks its ports: free ones stand in, so the recorded
        stack can still be rebuilt and torn down (the new service was never started there)."""
        ports = {k: int(v) for k, v in data["ports"].items()}
        for name in (*FIXED_PORTS, *(f"proxy_{name}" for name in PROXIED), *INTERNAL):
            ports.setdefault(name, free_port())
        return cls(Path(data["base"]), ports, divert_on_demand=bool(data.get("divert_on_demand", False)))
