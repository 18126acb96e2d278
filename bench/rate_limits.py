"""Rate-limit algorithms side by side: how much of a burst each lets through, what each stores per account, and what
the GCRA script costs on a real Redis next to a read-then-write done from the app.

Why a virtual clock for the algorithms: burst behaviour is arithmetic, not timing, so the first table is exact and
the same on any machine. The second table needs a server: a private ``redis-server`` on a free port, started and
stopped here. See notes/redis.md, "Rate limits in one round trip".

Run: ``.venv/bin/python -m bench.rate_limits [--quota 10 --window-s 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from app.cache.rate_limiter import RateLimiter
from app.domain.rate_limit import RatePolicy, gcra
from app.observability.metrics import build_rate_limit_metrics
from stack.native.brokers import RedisServer
from stack.native.layout import Layout, free_port

Admit = Callable[[int], bool]  # one request at a virtual instant in ms: admitted or not


def fixed_window(quota: int, window_ms: int) -> Admit:
    counts: dict[int, int] = {}

    def admit(now: int) -> bool:
        slot = now // window_ms
        if counts.get(slot, 0) >= quota:
            return False
        counts[slot] = counts.get(slot, 0) + 1
        return True

    return admit


def sliding_log(quota: int, window_ms: int) -> Admit:
    log: deque[int] = deque()

    def admit(now: int) -> bool:
        while log and log[0] <= now - window_ms:
            log.popleft()
        if len(log) >= quota:
            return False
        log.append(now)
        return True

    return admit


def sliding_counter(quota: int, window_ms: int) -> Admit:
    """Two fixed windows, the previous one weighted by how much of it still overlaps the sliding window."""
    counts: dict[int, int] = {}

    def admit(now: int) -> bool:
        slot = now // window_ms
        overlap = 1 - (now % window_ms) / window_ms
        if counts.get(slot - 1, 0) * overlap + counts.get(slot, 0) + 1 > quota:
            return False
        counts[slot] = counts.get(slot, 0) + 1
        return True

    return admit


def token_bucket(quota: int, window_ms: int) -> Admit:
    state = {"tokens": float(quota), "at": 0}

    def admit(now: int) -> bool:
        state["tokens"] = min(quota, state["tokens"] + (now - state["at"]) * quota / window_ms)
        state["at"] = now
        if state["tokens"] < 1:
            return False
        state["tokens"] -= 1
        return True

    return admit


def gcra_admit(quota: int, window_ms: int) -> Admit:
    policy = RatePolicy("bench", quota, window_ms // 1000)
    state: dict[str, int | None] = {"tat": None}

    def admit(now: int) -> bool:
        verdict, tat = gcra(policy, state["tat"], now)
        if tat is not None:
            state["tat"] = tat
        return verdict.allowed

    return admit


ALGORITHMS: dict[str, tuple[Callable[[int, int], Admit], str]] = {
    "fixed window": (fixed_window, "1 counter"),
    "sliding log": (sliding_log, "up to quota timestamps"),
    "sliding counter": (sliding_counter, "2 counters"),
    "token bucket": (token_bucket, "2 numbers"),
    "GCRA": (gcra_admit, "1 timestamp"),
}


def most_in_any_window(admitted: list[int], window_ms: int) -> int:
    return max((bisect.bisect_left(admitted, t + window_ms) - i for i, t in enumerate(admitted)), default=0)


def replay(admit: Admit, instants: list[int]) -> list[int]:
    return [now for now in instants if admit(now)]


def burst_table(quota: int, window_s: int) -> list[list[str]]:
    window_ms = window_s * 1000
    boundary = [window_ms - 1] * (2 * quota) + [window_ms] * (2 * quota)  # 4 x quota in 2 ms, across a boundary
    step = max(1, window_ms // (10 * quota))  # ten times the allowed rate
    greedy = list(range(0, 5 * window_ms, step))
    rows = []
    for name, (build, state) in ALGORITHMS.items():
        at_boundary = replay(build(quota, window_ms), boundary)
        steady = replay(build(quota, window_ms), greedy)
        rows.append(
            [
                name,
                str(len(at_boundary)),
                str(len(steady)),
                str(most_in_any_window(steady, window_ms)),
                state,
            ]
        )
    return rows


async def racy_admit(redis: Redis, policy: RatePolicy, key: str) -> bool:
    """The same GCRA, but read and written from the app in two round trips: what the script exists to prevent."""
    stored = await redis.get(key)
    now = round(time.time() * 1000)
    verdict, tat = gcra(policy, int(stored) if stored is not None else None, now)
    if tat is not None:
        await redis.set(key, tat, px=tat - now)
    return verdict.allowed


async def redis_table(url: str, quota: int, window_s: int, calls: int, concurrent: int) -> list[list[str]]:
    policy = RatePolicy("bench", quota, window_s)
    redis = Redis.from_url(url)
    limiter = RateLimiter(redis, build_rate_limit_metrics(CollectorRegistry()))
    try:
        await redis.flushdb()
        began = time.perf_counter()
        for n in range(calls):
            await limiter.admit(policy, f"seq-{n % 100}")
        script_us = (time.perf_counter() - began) / calls * 1e6
        began = time.perf_counter()
        for n in range(calls):
            await racy_admit(redis, policy, f"ratelimit:bench:racy-seq-{n % 100}")
        racy_us = (time.perf_counter() - began) / calls * 1e6
        scripted = await asyncio.gather(*(limiter.admit(policy, "burst") for _ in range(concurrent)))
        racy = await asyncio.gather(*(racy_admit(redis, policy, "ratelimit:bench:racy") for _ in range(concurrent)))
        await redis.zadd("log", {f"request-{n}": time.time() + n for n in range(quota)})
        gcra_bytes = await redis.memory_usage("ratelimit:bench:burst")
        log_bytes = await redis.memory_usage("log")
    finally:
        await redis.aclose()
    admitted = f"of {concurrent} at once, quota {quota}"
    by_script = sum(verdict.allowed for verdict in scripted)
    return [
        ["GCRA script (EVALSHA)", f"{script_us:.0f}", f"{by_script} {admitted}", str(gcra_bytes)],
        ["GET, decide, SET", f"{racy_us:.0f}", f"{sum(racy)} {admitted}", "-"],
        [f"sliding log (ZSET of {quota})", "-", "-", str(log_bytes)],
    ]


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    print(f"\n{title}")
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quota", type=int, default=10)
    parser.add_argument("--window-s", type=int, default=10)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrent", type=int, default=50)
    args = parser.parse_args()
    print_table(
        f"burst behaviour, quota {args.quota} per {args.window_s} s (virtual clock, exact)",
        [
            "algorithm",
            f"admitted of {4 * args.quota} in 2 ms at a boundary",
            f"admitted in {5 * args.window_s} s at 10x the rate",
            f"most in any {args.window_s} s",
            "state per account",
        ],
        burst_table(args.quota, args.window_s),
    )
    base = Path(tempfile.mkdtemp(prefix="refstack-bench-ratelimit-"))
    server = RedisServer(Layout(base, {"redis": free_port()}))
    try:
        server.start()
        url = f"redis://127.0.0.1:{server.port}/0"
        rows = asyncio.run(redis_table(url, args.quota, args.window_s, args.calls, args.concurrent))
    finally:
        server.close()
        shutil.rmtree(base, ignore_errors=True)
    print_table(
        f"on a private redis-server (loopback, one connection for sequential calls; {args.calls} calls)",
        ["decision", "µs per decision", "admitted", "bytes per key (MEMORY USAGE)"],
        rows,
    )


if __name__ == "__main__":
    main()
