"""Kept-alive connections to the app's own port, each knowing which uvicorn worker accepted it.

Why: some tests and benches must send one request to worker A and the next to worker B of the real 2-worker app (a
breaker opened by A's failures, a write through A that B must stop hiding, how long B takes to hear of it). The
workers share one listening socket, so the kernel decides who accepts a connection; the kernel also says who holds
it (``ss -p`` names the process), so nothing relies on how connections are spread. Used by bench/cache.py,
tests/integration/test_shared_breaker.py and tests/integration/test_two_level_cache.py. See notes/redis.md,
"One breaker for all workers" and "Two levels: a worker's memory in front of Redis".
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from http.client import HTTPConnection
from typing import Any
from urllib.parse import urlsplit


class WorkerConnection:
    """One kept-alive connection to the app's own port, and the PID of the worker that accepted it."""

    def __init__(self, app_url: str) -> None:
        address = urlsplit(app_url)
        assert address.hostname is not None
        assert address.port is not None
        self.app_port = address.port
        self.connection = HTTPConnection(address.hostname, address.port, timeout=10)
        self.connection.connect()
        assert self.connection.sock is not None
        self.local_port = int(self.connection.sock.getsockname()[1])
        self.pid = self.serving_pid()

    def serving_pid(self) -> int:
        """The process holding the server side of this connection, as the kernel says (``ss -p``)."""
        query = f"( sport = :{self.app_port} and dport = :{self.local_port} )"
        shown = subprocess.run(["ss", "-Htnp", "state", "established", query], capture_output=True, text=True)
        pids = {int(pid) for pid in re.findall(r"pid=(\d+)", shown.stdout)}
        assert len(pids) == 1, shown.stdout
        return pids.pop()

    def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, body: object = None
    ) -> tuple[int, dict[str, str], Any]:
        """One request on this connection (which must still be the same one afterwards): status, headers, JSON."""
        sent = {"Content-Type": "application/json", **(headers or {})} if body is not None else dict(headers or {})
        self.connection.request(method, path, body=None if body is None else json.dumps(body), headers=sent)
        response = self.connection.getresponse()
        raw = response.read()
        assert self.connection.sock is not None
        assert self.connection.sock.getsockname()[1] == self.local_port
        return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(raw) if raw else None

    def close(self) -> None:
        self.connection.close()


@contextmanager
def two_workers(app_url: str) -> Iterator[list[WorkerConnection]]:
    """Two connections to the app held by two different workers (new connections until the kernel gives one)."""
    first = WorkerConnection(app_url)
    opened = [first]
    try:
        for _ in range(60):  # bounded: each new connection is accepted by either worker
            other = WorkerConnection(app_url)
            opened.append(other)
            if other.pid != first.pid:
                break
        assert opened[-1].pid != first.pid, "every new connection was accepted by the same worker"
        yield [first, opened[-1]]
    finally:
        for connection in opened:
            connection.close()
