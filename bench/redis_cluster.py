"""A Redis Cluster of our own on loopback, to show what a cluster client must do: hash slots, ``MOVED`` for a key
whose slot lives elsewhere, ``ASK`` (and ``ASKING``) while a slot migrates, ``CROSSSLOT`` for keys in different
slots, and how a hash tag puts related keys in one slot.

Why here and not only in docker-compose.yml: this machine has no Docker engine, so the compose ``redis-cluster``
profile is validated offline; the same ``redis-cli --cluster create`` runs here on six private ``redis-server``
processes (free ports, never the system Redis, each stopped by its PID), and
tests/integration/test_redis_cluster.py asserts what they answer. See notes/redis.md, "Sentinel and Cluster".

Run: ``.venv/bin/python -m bench.redis_cluster`` (prints what each step answered).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from redis import Redis, RedisCluster
from redis.exceptions import ResponseError

from stack.native.brokers import exchange
from stack.native.layout import free_port
from stack.native.process import ServiceProcess, wait_until

NODES = 6
READY_S = 60.0


def run(client: Redis, *command: str | bytes | int) -> Any:
    """One raw command: the cluster commands have no typed method in redis-py's plain client."""
    return client.execute_command(*command)  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class ClusterNode:
    port: int
    client: Redis

    @property
    def node_id(self) -> str:
        return bytes(run(self.client, "CLUSTER", "MYID")).decode()


def spawn_ready(argv: list[str], folder: Path, port: int) -> ServiceProcess:
    """Start one ``redis-server`` (a node or a sentinel) logging into ``folder``; return once it answers PONG."""
    process = ServiceProcess(argv, folder / "redis.log")
    process.spawn()
    wait_until(lambda: exchange(port, b"PING\r\n").startswith(b"+PONG"), timeout_s=READY_S, what=argv[0], watch=process)
    return process


def start_node(base: Path, port: int) -> ServiceProcess:
    folder = base / str(port)
    folder.mkdir()
    argv = [
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
        "--appendonly", "no", "--protected-mode", "no", "--cluster-enabled", "yes",
        "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000",
        "--cluster-port", str(free_port()),  # the default, port + 10000, may be taken or out of range
    ]  # fmt: skip
    return spawn_ready(argv, folder, port)


def cluster_ok(nodes: list[ClusterNode]) -> bool:
    return all(b"cluster_state:ok" in bytes(run(n.client, "CLUSTER", "INFO")) for n in nodes)


@contextmanager
def private_cluster() -> Iterator[list[ClusterNode]]:
    """Six nodes made three primaries with one replica each by ``redis-cli --cluster create``; all stopped after."""
    base = Path(tempfile.mkdtemp(prefix="refstack-redis-cluster-"))
    ports = [free_port() for _ in range(NODES)]
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, base, ignore_errors=True)
        for port in ports:
            process = start_node(base, port)
            cleanup.callback(process.end, signal.SIGTERM)
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            capture_output=True,
            check=True,
            timeout=READY_S,
        )
        nodes = [ClusterNode(port, Redis(port=port, socket_timeout=5, decode_responses=False)) for port in ports]
        for node in nodes:
            cleanup.callback(node.client.close)
        wait_until(lambda: cluster_ok(nodes), timeout_s=READY_S, what="cluster_state:ok")
        yield nodes


def owner(nodes: list[ClusterNode], slot: int) -> ClusterNode:
    """The primary serving ``slot``, from ``CLUSTER NODES`` as the first node sees it."""
    for line in bytes(run(nodes[0].client, "CLUSTER", "NODES")).decode().splitlines():
        _id, address, flags, *_rest = line.split()
        ranges = [r for r in line.split()[8:] if not r.startswith("[")]  # "[slot->-id]" marks a migration
        if "master" not in flags.split(","):
            continue
        for bounds in ranges:
            low, _, high = bounds.partition("-")
            if int(low) <= slot <= int(high or low):
                port = int(address.split("@")[0].rsplit(":", 1)[1])
                return next(n for n in nodes if n.port == port)
    raise LookupError(f"no primary serves slot {slot}")


def answer(client: Redis, *command: str | bytes) -> str:
    """What a plain (non-cluster) client gets: the reply, or the error text the node sent."""
    try:
        return repr(run(client, *command))
    except ResponseError as error:
        return f"{type(error).__name__}: {error}"


def keyslot(nodes: list[ClusterNode], key: str) -> int:
    return int(run(nodes[0].client, "CLUSTER", "KEYSLOT", key))


def ask_during_migration(nodes: list[ClusterNode], key: str) -> dict[str, str]:
    """Move ``key``'s slot to another primary by hand, stopping midway to show ``ASK`` and ``ASKING``."""
    slot = keyslot(nodes, key)
    source = owner(nodes, slot)
    target = next(n for n in nodes if n is not source and n.client.info("replication")["role"] == "master")
    source.client.set(key, "moved-early")
    run(target.client, "CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
    run(source.client, "CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)
    run(source.client, "MIGRATE", "127.0.0.1", target.port, key, 0, 5000)
    seen = {
        "source, migrated key": answer(source.client, "GET", key),
        "target, no ASKING": answer(target.client, "GET", key),
    }
    with target.client.pipeline(transaction=False) as pipe:  # ASKING holds for the next command on this connection
        pipe.execute_command("ASKING")  # type: ignore[no-untyped-call]
        pipe.execute_command("GET", key)  # type: ignore[no-untyped-call]
        seen["target, after ASKING"] = repr(pipe.execute()[1])
    for node in nodes:
        if node.client.info("replication")["role"] == "master":
            run(node.client, "CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
    deadline = time.monotonic() + READY_S
    while owner(nodes, slot) is not target:
        if time.monotonic() >= deadline:
            raise TimeoutError(f"slot {slot} still not served by its new owner after {READY_S} s")
        time.sleep(0.05)  # sleep-ok: the poll interval of a deadline-bound wait
    seen["source, after the move"] = answer(source.client, "GET", key)
    return seen


def followed_by_a_cluster_client(nodes: list[ClusterNode], key: str) -> bytes | None:
    """redis-py's ``RedisCluster`` maps slots to nodes and follows MOVED and ASK on its own."""
    cluster = RedisCluster(host="127.0.0.1", port=nodes[0].port, socket_timeout=5)
    try:
        return cast(bytes | None, cluster.get(key))  # decode_responses is off
    finally:
        cluster.close()


def main() -> None:
    with private_cluster() as nodes:
        cache_key, lock_key = "refstack:cache:{event:42}", "refstack:cache:{event:42}:lock"
        other = "refstack:cache:{event:43}"
        slot = keyslot(nodes, cache_key)
        home = owner(nodes, slot)
        elsewhere = next(n for n in nodes if n is not home and n.client.info("replication")["role"] == "master")
        for key in (cache_key, lock_key, other):
            print(f"CLUSTER KEYSLOT {key}: {keyslot(nodes, key)}")
        print(f"GET on the wrong primary: {answer(elsewhere.client, 'GET', cache_key)}")
        print(f"MGET across two slots: {answer(home.client, 'MGET', cache_key, other)}")
        for step, reply in ask_during_migration(nodes, "refstack:demo:{migrating}").items():
            print(f"{step}: {reply}")
        print(f"a cluster client, after the move: {followed_by_a_cluster_client(nodes, 'refstack:demo:{migrating}')!r}")


if __name__ == "__main__":
    main()
