"""The bare floor on the same path as the stack's app: ``bench/bare_app.py`` under the stack's own uvicorn command,
behind an Nginx rendered from the stack's template, on free ports of a folder of its own; and ``wrk`` to drive both.

Why the stack's classes: the floor must differ from refstack only in the app (same uvicorn flags and workers, same
Nginx config, limits and upstream keepalive), or the ratio would measure the difference in plumbing. Why wrk: a
Python load generator on this 2-core machine saturates before a bare app does, which would squeeze every ratio
towards 1; wrk is the tool the issue measured with (``wrk -t2 -c64``). See notes/fastapi.md, "What a request costs".
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from stack.native.layout import Layout, free_port
from stack.native.service import http_ok
from stack.native.web import UNTHROTTLED, AppServer, NginxServer


class BareApp(AppServer):
    factory = "bench.bare_app:create_app"
    fault_client = False  # a floor has no faults to divert

    def _ready(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self.port}/api/v1/events/floor")


class BareEdge(NginxServer):
    fault_client = False


@contextmanager
def bare_floor() -> Iterator[str]:
    """Start the floor app and its Nginx; yield the Nginx URL; stop both and remove the folder."""
    base = Path(tempfile.mkdtemp(prefix="refstack-floor-"))
    base.chmod(0o711)  # nginx workers must traverse it
    layout = Layout(base, {"app": free_port(), "nginx": free_port()}, divert_on_demand=True)  # Nginx → app directly
    app, edge = BareApp(layout, {}), BareEdge(layout, UNTHROTTLED)
    try:
        app.start()
        edge.start()
        yield edge.url
    finally:
        edge.stop()
        app.stop()
        shutil.rmtree(base, ignore_errors=True)


@dataclass(frozen=True)
class WrkRun:
    rate: float
    p50_s: float
    p99_s: float


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def _field(pattern: str, out: str) -> str:
    found = re.search(pattern, out)
    if found is None:
        raise RuntimeError(f"wrk printed nothing matching {pattern!r}:\n{out}")
    return found.group(1)


def _seconds(text: str) -> float:
    unit = _field(r"(us|ms|s)$", text)
    return float(text.removesuffix(unit)) * _UNITS[unit]


def wrk(
    url: str, *, seconds: float, connections: int = 64, threads: int = 2, headers: dict[str, str] | None = None
) -> WrkRun:
    """``wrk -t2 -c64 --latency``: requests per second and the p50/p99 it measured; any non-2xx/3xx answer fails."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:.0f}s", "--latency"]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True, timeout=seconds + 30).stdout
    if "Non-2xx or 3xx responses" in out:
        raise RuntimeError(f"wrk saw error answers from {url}:\n{out}")
    rate = float(_field(r"Requests/sec:\s+([\d.]+)", out))
    return WrkRun(rate, _seconds(_field(r"\s50%\s+(\S+)", out)), _seconds(_field(r"\s99%\s+(\S+)", out)))


def wrk_installed() -> bool:
    return shutil.which("wrk") is not None
