"""Sentinel failover on loopback: one primary, one replica and three sentinels with a quorum of 2, written with the
same ``sentinel`` directives as the compose ``redis-sentinel`` profile. The primary is frozen (SIGSTOP); how long
until the sentinels agree it is down and the replica is promoted, and what the old primary becomes when it thaws.

Why here: this machine has no Docker engine, so the compose profile is validated offline; these private processes
(free ports, never the system Redis, each stopped by its PID) run the same configuration for real, and
tests/integration/test_redis_sentinel.py asserts the outcome (no timed assertion). See notes/redis.md, "Sentinel
and Cluster".

Run: ``.venv/bin/python -m bench.redis_sentinel``.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from redis import Redis

from bench.redis_cluster import spawn_ready
from stack.native.layout import free_port
from stack.native.process import ServiceProcess

SERVICE = "refstack"
QUORUM = 2
DOWN_AFTER_MS = 1000
DEADLINE_S = 60.0


@dataclass(frozen=True)
class SentinelSetup:
    primary: ServiceProcess
    primary_port: int
    replica_port: int
    sentinels: list[Redis]


def sentinel_config(port: int, primary_port: int) -> str:
    """The compose profile's directives, with a loopback address and a 1 s down-after so the demo is short."""
    return "\n".join(
        [
            f"port {port}",
            "bind 127.0.0.1",
            "sentinel resolve-hostnames yes",
            "sentinel announce-hostnames yes",
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} {QUORUM}",
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {SERVICE} 30000",
            f"sentinel parallel-syncs {SERVICE} 1",
            "",
        ]
    )


def poll(condition: Callable[[], object], what: str) -> float:
    """Seconds until ``condition()`` is truthy; TimeoutError at the deadline."""
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > DEADLINE_S:
            raise TimeoutError(f"{what}: not after {DEADLINE_S} s")
        time.sleep(0.05)  # sleep-ok: the poll interval of a deadline-bound wait
    return time.monotonic() - began


def role(port: int) -> str:
    with Redis(port=port, socket_timeout=2) as client:
        return str(client.info("replication")["role"])


@contextmanager
def private_sentinels() -> Iterator[SentinelSetup]:
    """Primary, replica and three sentinels that all see each other; every process thawed and stopped after."""
    base = Path(tempfile.mkdtemp(prefix="refstack-redis-sentinel-"))
    primary_port, replica_port = free_port(), free_port()
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, base, ignore_errors=True)
        processes: list[ServiceProcess] = []
        cleanup.callback(stop_all, processes)
        for port, extra in ((primary_port, []), (replica_port, ["--replicaof", "127.0.0.1", str(primary_port)])):
            folder = base / str(port)
            folder.mkdir()
            argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", ""]
            processes.append(spawn_ready([*argv, "--appendonly", "no", *extra], folder, port))
        poll(lambda: role(replica_port) == "slave" and _link_up(replica_port), "the replica's link to the primary")
        sentinels = []
        for _ in range(3):
            port = free_port()
            folder = base / f"sentinel-{port}"
            folder.mkdir()
            (folder / "sentinel.conf").write_text(sentinel_config(port, primary_port))
            processes.append(spawn_ready(["redis-server", str(folder / "sentinel.conf"), "--sentinel"], folder, port))
            sentinels.append(Redis(port=port, socket_timeout=2, decode_responses=True))
            cleanup.callback(sentinels[-1].close)
        poll(lambda: all(_sees_everyone(s) for s in sentinels), "every sentinel seeing the replica and the others")
        yield SentinelSetup(processes[0], primary_port, replica_port, sentinels)


def stop_all(processes: list[ServiceProcess]) -> None:
    """Thaw first (a stopped process would sit on SIGTERM until the SIGKILL fallback), newest first."""
    for process in reversed(processes):
        process.thaw()
        process.end(signal.SIGTERM)


def _link_up(replica_port: int) -> bool:
    with Redis(port=replica_port, socket_timeout=2, decode_responses=True) as client:
        return bool(client.info("replication").get("master_link_status") == "up")


def watched(sentinel: Redis) -> dict[str, Any]:
    """``SENTINEL MASTER refstack`` as redis-py parses it."""
    return cast(dict[str, Any], sentinel.sentinel_master(SERVICE))


def _sees_everyone(sentinel: Redis) -> bool:
    master = watched(sentinel)
    return int(master["num-slaves"]) == 1 and int(master["num-other-sentinels"]) == 2


def primary_port(sentinel: Redis) -> int:
    """What a client asks a sentinel: the current primary of the service."""
    address = cast(tuple[str, int], sentinel.sentinel_get_master_addr_by_name(SERVICE))
    return int(address[1])


@dataclass(frozen=True)
class FailoverOutcome:
    quorum: int
    seconds_to_promotion: float
    every_sentinel_names: set[int]
    replica_role: str
    old_primary_role_after_thaw: str


def fail_over_a_frozen_primary(setup: SentinelSetup) -> FailoverOutcome:
    """SIGSTOP the primary, wait for the sentinels to promote the replica, SIGCONT the old primary."""
    quorum = int(watched(setup.sentinels[0])["quorum"])
    setup.primary.freeze()
    try:
        seconds = poll(
            lambda: all(primary_port(s) == setup.replica_port for s in setup.sentinels), "the replica's promotion"
        )
        names = {primary_port(s) for s in setup.sentinels}
        promoted_role = role(setup.replica_port)
    finally:
        setup.primary.thaw()
    poll(lambda: role(setup.primary_port) == "slave", "the old primary rejoining as a replica")
    return FailoverOutcome(quorum, seconds, names, promoted_role, role(setup.primary_port))


def main() -> None:
    with private_sentinels() as setup:
        outcome = fail_over_a_frozen_primary(setup)
    print(f"sentinels: 3, quorum {outcome.quorum}, down-after {DOWN_AFTER_MS} ms")
    print(f"primary frozen -> every sentinel names the replica after {outcome.seconds_to_promotion:.1f} s")
    print(f"the replica's role now: {outcome.replica_role}")
    print(f"the old primary after SIGCONT: {outcome.old_primary_role_after_thaw}")


if __name__ == "__main__":
    main()
