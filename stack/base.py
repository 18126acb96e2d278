"""The one interface every provider gives: a service is an object with the same verbs everywhere.

Why: a fault test written as ``stack["redis"].pause()`` must mean the same on a laptop without Docker (SIGSTOP of
a private process) and on a Docker host (``docker pause``). See notes/docker.md, "How the native provider stands in
for compose".
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

SERVICE_NAMES = ("postgres", "replica", "pgbouncer", "redis", "rabbitmq", "payments", "app", "worker", "nginx")
COMMON_VERBS = ("stop", "start", "restart", "pause", "resume", "slow", "cut", "heal")
REPLICA_VERBS = ("lag", "unlag", "promote")


@runtime_checkable
class Service(Protocol):
    """A running dependency with fault verbs. ``url`` is what clients use (through the fault proxy if any)."""

    name: str

    @property
    def url(self) -> str: ...

    @property
    def pids(self) -> list[int]: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def restart(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def slow(self, ms: int) -> None: ...

    def cut(self) -> None: ...

    def heal(self) -> None: ...


@runtime_checkable
class ReplicaService(Service, Protocol):
    """The streaming replica adds replay control, lag measurement and promotion."""

    def pause_replay(self) -> None: ...

    def resume_replay(self) -> None: ...

    def lag_bytes(self) -> int: ...

    def promote(self) -> None: ...


class StackError(RuntimeError):
    """A service failed to start or a verb could not be applied; the message names the service and its log."""
