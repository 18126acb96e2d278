"""What a worker's memory saves on a cached read: one event through ``CacheAside`` with the first level and without it,
against a private ``redis-server``, and the same read with a writer announcing a new version every 10 ms.

Why this beside bench/cache.py: through Nginx a hit's cost is mostly the request path, and on a shared 2-core
machine the difference between one Redis round trip and none drowns in it. Here the read is the whole measurement:
Redis only (a ``GET`` and JSON decoding per read) against the worker's memory (a dictionary lookup, one ``GET`` per
local TTL). The third row keeps a second worker's subscription busy with invalidations, so its reads keep going
back to Redis: the price of coherence under writes. Last, how long an announced write takes to reach the other
worker's memory through the channel. See notes/redis.md, "Two levels: a worker's memory in front of
Redis".

Run: ``.venv/bin/python -m bench.cache_levels [--reads 20000]`` (it starts and stops its own server).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from app.cache.aside import CacheAside, CachePolicy
from app.cache.invalidation import InvalidationListener
from app.cache.local import LocalCache
from app.observability.metrics import CacheMetrics, build_cache_metrics
from app.services.event_cache import EVENT_CODEC
from app.services.events import EventRecord
from bench.through_nginx import percentile
from stack.native.brokers import RedisServer
from stack.native.layout import Layout, free_port

POLICY = CachePolicy(ttl_s=30.0, missing_ttl_s=2.0, redis_timeout_s=0.1, lock_s=5.0, wait_s=0.5)
LOCAL_TTL_S = 1.0
WRITE_EVERY_S = 0.01
WRITES = 200
RECORD = EventRecord(
    id=uuid.uuid4(),
    organizer_id=uuid.uuid4(),
    title="Show",
    city="Berlin",
    venue="Hall A",
    starts_at=datetime(2027, 6, 1, 20, tzinfo=UTC),
    price_cents=4500,
    rows=10,
    seats_per_row=20,
    version=1,
)


def local_cache(metrics: CacheMetrics) -> LocalCache[EventRecord]:
    return LocalCache("event", max_entries=10_000, ttl_s=LOCAL_TTL_S, metrics=metrics)


async def timed_reads(cache: CacheAside[EventRecord], reads: int) -> list[float]:
    async def load() -> EventRecord:
        return RECORD

    await cache.get("hot", load)
    latencies = []
    for _ in range(reads):
        await asyncio.sleep(0)  # a request boundary: other tasks (the subscription, a writer) run between reads
        began = time.perf_counter()
        await cache.get("hot", load)
        latencies.append(time.perf_counter() - began)
    return latencies


def memory_share(registry: CollectorRegistry, reads: int) -> float:
    """The share of the timed reads (and the one before them) that the worker's memory answered."""
    return (registry.get_sample_value("cache_local_lookups_total", {"cache": "event", "outcome": "hit"}) or 0) / (
        reads + 1
    )


async def under_writes(redis: Redis, reads: int) -> tuple[list[float], float]:
    """The reader's worker subscribed, while another worker writes a new version through every ``WRITE_EVERY_S``."""
    registry = CollectorRegistry()
    metrics = build_cache_metrics(registry)
    held = local_cache(metrics)
    reader = CacheAside(redis, "event", POLICY, EVENT_CODEC, metrics.observe, held)
    writer = CacheAside(redis, "event", POLICY, EVENT_CODEC, metrics.observe)
    listening = asyncio.create_task(InvalidationListener(redis, {"event": held}, metrics, 1.0).listen())

    async def write() -> None:
        version = 1
        while True:
            version += 1
            await writer.put("hot", replace(RECORD, version=version))
            await asyncio.sleep(WRITE_EVERY_S)  # sleep-ok: the writer's pace, not a synchronisation

    async with asyncio.timeout(5):
        while held.epoch == 0:  # noqa: ASYNC110 - subscribed once its first flush opened epoch 1; nothing to await
            await asyncio.sleep(0.001)  # sleep-ok: the poll interval of a deadline-bound wait
    writing = asyncio.create_task(write())
    try:
        return await timed_reads(reader, reads), memory_share(registry, reads)
    finally:
        for task in (writing, listening):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def announcement_delays(redis: Redis, writes: int) -> list[float]:
    """``writes`` times: the reader's worker holds the current version, another worker writes the next one through;
    the time from the write-through's return to the moment the reader's copy is gone (its subscription applied the
    message). One process, two Redis connections, so this is the channel's own delay, without a request's."""
    metrics = build_cache_metrics(CollectorRegistry())
    held = local_cache(metrics)
    reader = CacheAside(redis, "event", POLICY, EVENT_CODEC, metrics.observe, held)
    writer = CacheAside(redis, "event", POLICY, EVENT_CODEC, metrics.observe)
    listening = asyncio.create_task(InvalidationListener(redis, {"event": held}, metrics, 1.0).listen())
    delays = []
    try:
        async with asyncio.timeout(5):
            while held.epoch == 0:  # noqa: ASYNC110 - subscribed once its first flush opened epoch 1; nothing to await
                await asyncio.sleep(0.001)  # sleep-ok: the poll interval of a deadline-bound wait
        for version in range(2, writes + 2):
            await reader.get("announced", partial(asyncio.sleep, 0, replace(RECORD, version=version - 1)))
            await writer.put("announced", replace(RECORD, version=version))
            written = time.perf_counter()
            async with asyncio.timeout(5):
                while held.get("announced") is not None:  # noqa: ASYNC110 - the listener applies the message; no event
                    await asyncio.sleep(0)  # sleep-ok: yield to the listener, a deadline-bound wait
            delays.append(time.perf_counter() - written)
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening
    return delays


async def measure(url: str, reads: int) -> tuple[list[tuple[str, list[float], float]], list[float]]:
    redis = Redis.from_url(url)
    try:
        registry = CollectorRegistry()
        metrics = build_cache_metrics(registry)
        redis_only = CacheAside(redis, "event", POLICY, EVENT_CODEC, metrics.observe)
        rows = [("Redis only", await timed_reads(redis_only, reads), 0.0)]
        two_levels = CacheAside(redis, "event", POLICY, EVENT_CODEC, metrics.observe, local_cache(metrics))
        rows.append(("worker memory", await timed_reads(two_levels, reads), memory_share(registry, reads)))
        rows.append((f"memory, a write every {WRITE_EVERY_S * 1000:.0f} ms", *await under_writes(redis, reads)))
        delays = await announcement_delays(redis, WRITES)
    finally:
        await redis.aclose()
    return rows, delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reads", type=int, default=20_000)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="refstack-bench-cache-levels-"))
    server = RedisServer(Layout(base, {"redis": free_port()}))
    try:
        server.start()
        rows, delays = asyncio.run(measure(f"redis://127.0.0.1:{server.port}/0", args.reads))
    finally:
        server.close()
        shutil.rmtree(base, ignore_errors=True)
    redis_p50 = percentile(rows[0][1], 0.5)
    print(f"\none cached event read through CacheAside, {args.reads} reads each, a private redis-server on loopback")
    print(f"{'row':<30}{'p50 µs':>9}{'p99 µs':>9}{'p50 x Redis':>13}{'from memory':>13}")
    for name, latencies, share in rows:
        p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
        print(f"{name:<30}{p50 * 1e6:>9.1f}{p99 * 1e6:>9.1f}{p50 / redis_p50:>13.3f}{share:>12.1%}")
    print(
        f"\n{WRITES} writes announced: write-through returned -> the other worker's copy gone:"
        f" p50 {percentile(delays, 0.5) * 1e6:.0f} µs, p99 {percentile(delays, 0.99) * 1e6:.0f} µs,"
        f" max {max(delays) * 1e6:.0f} µs"
    )


if __name__ == "__main__":
    main()
