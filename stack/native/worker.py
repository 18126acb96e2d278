"""The worker process of the stack (``python -m app.worker``): the app's consumers, a service like any other.

Why a service of its own: tests and a person at the terminal stop, freeze, SIGKILL and restart the consumer exactly
as they do the app, and its readiness is its own (``/health/ready`` on its port: every consumer subscribed). It has
no fault proxy (nobody connects to it but probes); to slow or cut what it talks to, slow or cut that service. Its
environment is the app's, so both read the same ``REFSTACK_*`` settings. See notes/rabbitmq.md.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from stack.native.layout import Layout
from stack.native.process import ServiceProcess
from stack.native.service import NativeService, http_ok
from stack.native.web import REPO


class WorkerProcess(NativeService):
    name = "worker"
    proxied = False

    def __init__(self, layout: Layout, environment: dict[str, str]) -> None:
        self.environment = environment
        super().__init__(layout)

    def _process(self) -> ServiceProcess:
        env = {
            **os.environ,
            **self.environment,
            "REFSTACK_WORKER_HTTP_PORT": str(self.port),
            "PYTHONUNBUFFERED": "1",  # each log line reaches the log at once (tests read it)
        }
        return ServiceProcess([sys.executable, "-m", "app.worker"], self.log_path, env=env, cwd=REPO)

    @property
    def log_path(self) -> Path:
        return self.layout.base / "logs" / "worker.log"

    def _ready(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self.port}/health/ready")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def slow(self, ms: int) -> None:
        raise NotImplementedError(self._nothing_to_divert)

    def cut(self) -> None:
        raise NotImplementedError(self._nothing_to_divert)

    def heal(self) -> None:
        raise NotImplementedError(self._nothing_to_divert)

    _nothing_to_divert = (
        "nothing connects to the worker but probes: to slow or cut its work, slow or cut rabbitmq or postgres"
    )
