"""What Redis operations cost here: the fork behind an RDB snapshot, round trips saved by pipelining and MGET, one
hot key beside spread keys, and deleting a big key with ``DEL`` beside ``UNLINK``.

Why a bench and not a test: these are times, and a timed assertion on a shared 2-core machine would be flaky and
prove nothing. Each table comes from a ``redis-server`` started here on a free port (never the system Redis) and
stopped by its PID; every loop is bounded. See notes/redis.md ("RDB snapshots: the fork", "Pipelining", "Hot keys
and big keys").

Run: ``.venv/bin/python -m bench.redis_costs [--fork-mb 16 256 1024] [--keys 1000] [--big 1000000]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from collections.abc import Callable

from redis import Redis

from bench.redis_behaviour import private_redis
from lab.table import Table
from stack.native.brokers import RedisServer

CHUNK = 10 * 1024
BGSAVE_DEADLINE_S = 120.0


def fill_mb(client: Redis, megabytes: int) -> None:
    """About ``megabytes`` MB of 10 KB strings, written through pipelines of 1000."""
    value = b"v" * CHUNK
    count = megabytes * 1024 * 1024 // CHUNK
    for start in range(0, count, 1000):
        with client.pipeline(transaction=False) as pipe:
            for i in range(start, min(start + 1000, count)):
                pipe.set(f"fill:{i}", value)
            pipe.execute()


def bgsave(client: Redis) -> tuple[float, float, float]:
    """Run one BGSAVE to the end: (fork ms from ``latest_fork_usec``, seconds until done, copy-on-write MB)."""
    began = time.monotonic()
    client.bgsave()
    deadline = time.monotonic() + BGSAVE_DEADLINE_S
    while int(client.info("persistence")["rdb_bgsave_in_progress"]) == 1:
        if time.monotonic() >= deadline:
            raise TimeoutError(f"BGSAVE still running after {BGSAVE_DEADLINE_S} s")
        time.sleep(0.02)  # sleep-ok: the poll interval of a deadline-bound wait
    done_s = time.monotonic() - began
    persistence = client.info("persistence")
    if persistence["rdb_last_bgsave_status"] != "ok":
        raise RuntimeError(f"BGSAVE failed: {persistence}")
    fork_ms = int(client.info("stats")["latest_fork_usec"]) / 1000
    return fork_ms, done_s, int(persistence["rdb_last_cow_size"]) / 2**20


def fork_rows(client: Redis, sizes_mb: list[int]) -> list[tuple[str, int, int, float, float, float]]:
    rows = []
    for megabytes in sizes_mb:
        client.flushall()
        fill_mb(client, megabytes)
        memory = client.info("memory")
        used_mb, rss_mb = int(memory["used_memory"]) // 2**20, int(memory["used_memory_rss"]) // 2**20
        fork_ms, done_s, cow_mb = bgsave(client)
        rows.append((f"{megabytes} MB of 10 KB strings", used_mb, rss_mb, fork_ms, done_s, cow_mb))
    client.flushall()
    return rows


def median_us(action: Callable[[], object], rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        action()
        times.append((time.perf_counter() - began) * 1e6)
    return statistics.median(times)


def pipelining_rows(client: Redis, keys: int) -> list[tuple[str, int, float, float]]:
    names = [f"pipe:{i}" for i in range(keys)]
    client.mset({name: b"x" * 64 for name in names})

    def one_by_one() -> None:
        for name in names:
            client.get(name)

    def pipelined() -> None:
        with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.get(name)
            pipe.execute()

    def mget() -> None:
        client.mget(names)

    rows = []
    for label, trips, action in (
        ("one GET at a time", keys, one_by_one),
        ("one pipeline of GETs", 1, pipelined),
        ("one MGET", 1, mget),
    ):
        total = median_us(action)
        rows.append((label, trips, total / 1000, total / keys))
    client.delete(*names)
    return rows


def benchmark_ops(server: RedisServer, command: str, random_keys: int, requests: int) -> float:
    """``redis-benchmark``'s requests per second for ``command`` (``-r 0``: one key; else that many random keys)."""
    argv = ["redis-benchmark", "-p", str(server.port), "-t", command, "-n", str(requests), "-c", "50", "-P", "16", "-q"]
    if random_keys:
        argv += ["-r", str(random_keys)]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
    # "INCR: 123456.79 requests per second, p50=..." on the last line; carriage returns separate progress lines
    last = run.stdout.replace("\r", "\n").strip().splitlines()[-1]
    return float(last.split(":", 1)[1].split()[0])


def hot_key_rows(server: RedisServer, requests: int) -> list[tuple[str, float]]:
    rows = []
    for command in ("incr", "get"):
        one = benchmark_ops(server, command, 0, requests)
        spread = benchmark_ops(server, command, 100_000, requests)
        rows.append((f"{command.upper()} on one key", one))
        rows.append((f"{command.upper()} on 100k random keys", spread))
    return rows


def build_big_hash(client: Redis, key: str, fields: int) -> None:
    for start in range(0, fields, 10_000):
        client.hset(key, mapping={f"f{i}": i for i in range(start, min(start + 10_000, fields))})


def big_key_rows(client: Redis, fields: int) -> list[tuple[str, float, float]]:
    """A hash of ``fields`` fields and a list of as many items, each deleted once by DEL and once by UNLINK."""
    rows = []
    for kind in ("hash", "list"):
        for command in ("DEL", "UNLINK"):
            key = f"big:{kind}"
            if kind == "hash":
                build_big_hash(client, key, fields)
            else:
                for start in range(0, fields, 10_000):
                    client.rpush(key, *range(start, min(start + 10_000, fields)))
            memory_mb = int(client.memory_usage(key, samples=0) or 0) / 2**20
            began = time.perf_counter()
            (client.delete if command == "DEL" else client.unlink)(key)
            rows.append((f"{kind} of {fields} by {command}", memory_mb, (time.perf_counter() - began) * 1000))
    return rows


def bigkeys_summary(server: RedisServer, client: Redis, fields: int) -> str:
    """``redis-cli --bigkeys`` over a few small keys and one big hash: the lines naming the biggest keys."""
    client.flushall()
    client.mset({f"small:{i}": i for i in range(100)})
    build_big_hash(client, "big:hash", fields)
    run = subprocess.run(
        ["redis-cli", "-p", str(server.port), "--bigkeys"], capture_output=True, text=True, timeout=120, check=True
    )
    client.flushall()
    return "\n".join(line for line in run.stdout.splitlines() if line.startswith("Biggest"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--fork-mb", type=int, nargs="+", default=[16, 256, 1024])
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--big", type=int, default=1_000_000)
    args = parser.parse_args()
    with private_redis(prefix="refstack-bench-redis-") as (server, client):
        version = client.info("server")["redis_version"]
        tables = [
            Table(
                f"RDB snapshot (BGSAVE) on redis-server {version}",
                ("data", "used MB", "RSS MB", "fork ms (latest_fork_usec)", "BGSAVE done in s", "copy-on-write MB"),
                fork_rows(client, args.fork_mb),
            ),
            Table(
                f"{args.keys} GETs of 64-byte values over loopback (median of 5)",
                ("how", "round trips", "total ms", "µs per key"),
                pipelining_rows(client, args.keys),
            ),
            Table(
                f"redis-benchmark, {args.requests} requests, 50 connections, pipelines of 16",
                ("what", "requests/s"),
                hot_key_rows(server, args.requests),
            ),
            Table(
                "deleting one big key (the round trip of the command; MEMORY USAGE ... SAMPLES 0)",
                ("key", "MB", "ms"),
                big_key_rows(client, args.big),
            ),
        ]
        bigkeys = bigkeys_summary(server, client, args.big)
    print("\n\n".join(table.render() for table in tables))
    print(f"\nredis-cli --bigkeys:\n{bigkeys}")


if __name__ == "__main__":
    main()
