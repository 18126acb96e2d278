"""The fault fixture's engine: break services through the stack's verbs, then always put them back.

Why restore everything, not just what the test meant to break: one failing fault test must not poison the next
(a frozen Redis left behind would fail every later test for the wrong reason). See notes/fault_tolerance.md.
"""

from __future__ import annotations

import signal
from typing import Any

from stack.native.stack import NativeStack
from tests.polling import wait_for
from tests.probes import ready


class FaultInjector:
    """Breaks services through the stack's verbs and, whatever the test did, puts everything back."""

    def __init__(self, stack: NativeStack) -> None:
        self.stack = stack
        self.touched: list[str] = []

    def __call__(self, service: str, verb: str, *args: Any) -> None:
        if service not in self.touched:
            self.touched.append(service)
        getattr(self.stack[service], verb)(*args)
        self.stack.save_state()  # a restarted process has a new PID: `python -m stack` must find it

    def kill(self, service: str) -> None:
        """SIGKILL the service's root process: a crash that leaves it no chance to finish, ack or return anything."""
        if service not in self.touched:
            self.touched.append(service)
        self.stack[service].process.end(signal.SIGKILL)
        self.stack.save_state()

    def restore(self) -> None:
        for name in reversed(self.touched):
            svc: Any = self.stack[name]
            svc.resume()
            if svc.proxied:
                svc.heal()
            if not svc.process.alive():
                svc.start()
            if name == "replica":
                svc.resume_replay()
        self.stack.save_state()
        if self.touched:
            wait_for(lambda: ready(self.stack)[1].get("status") == "ok", timeout_s=30, what="stack ready after restore")
