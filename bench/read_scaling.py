"""Reads per second with the replica in rotation vs the primary alone, and the share of reads the router must send
to the primary as the write rate rises.

Why both tables: a replica is bought for read capacity, and read-your-writes is what eats into it. The first table
runs the same read load (a city's event list through Nginx, read by a signed-in user: anonymous pages are answered
by a 1 s Redis cache, notes/redis.md, and would not measure the router) with the replica in rotation and then
stopped (the ReplicaRouter sends everything to the primary), against a floor measured in the same run
(``GET /health/live``, no database work). The second paces organizers writing events and reading them back at once
while the readers go on, and reports which share of reads had to go to the primary and why, read from the
router's own ``db_reads_routed_total``. On one 2-core machine the database servers share the CPUs with the app and
Nginx, so the first table shows the mechanism and its overhead, not the gain of a second machine.
See notes/db_scaling.md, "Read scaling, measured".

Run: ``make bench`` or ``.venv/bin/python -m bench.read_scaling [--seconds 5 --in-flight 32]``.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.catalogue import city, load_events
from bench.through_nginx import account, health_floor, percentile, run_on_a_private_stack
from stack.native.stack import NativeStack

CITIES = 20
WRITE_RATES = (0.0, 5.0, 20.0, 50.0)


@dataclass
class Phase:
    reads: int
    seconds: float
    latencies: list[float]
    routed: Counter[tuple[str, str]]
    writes: int = 0

    @property
    def to_primary(self) -> float:
        total = sum(self.routed.values())
        return sum(v for (target, _), v in self.routed.items() if target == "primary") / total if total else 0.0


@dataclass(frozen=True)
class Target:
    client: httpx.AsyncClient  # through Nginx
    metrics_url: str  # the app's own port: the edge does not publish /metrics
    prefix: str
    in_flight: int
    organizer: dict[str, str]
    reader: dict[str, str]  # signed in: anonymous list pages are served from a 1 s Redis cache, not by the router


async def routed(target: Target) -> Counter[tuple[str, str]]:
    """``db_reads_routed_total`` summed over workers, by (target, reason)."""
    text = (await target.client.get(target.metrics_url)).text
    return Counter(
        {
            (sample.labels["target"], sample.labels["reason"]): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "db_reads_routed_total"
        }
    )


async def read_load(target: Target, seconds: float, write_rate: float = 0.0) -> Phase:
    """``in_flight`` signed-in readers for ``seconds``; beside them, an organizer's writes paced at ``write_rate``
    events/s, each read back at once (the read that read-your-writes must get right)."""
    client, organizer = target.client, target.organizer
    before = await routed(target)
    latencies: list[float] = []
    writes = 0
    deadline = time.monotonic() + seconds

    async def reader() -> None:
        while time.monotonic() < deadline:
            began = time.perf_counter()
            where = {"city": city(target.prefix, random.randrange(CITIES))}
            answer = await client.get("/api/v1/events", params=where, headers=target.reader)
            answer.raise_for_status()
            latencies.append(time.perf_counter() - began)

    writers = max(1, round(write_rate / 2))  # one write and its read-back take tens of ms: share the rate out

    async def writer() -> None:
        nonlocal writes
        body: dict[str, str | int] = {"title": "W", "city": "Writes", "venue": "Hall", "price_cents": 100}
        body |= {"starts_at": "2030-01-01T20:00:00+00:00", "rows": 1, "seats_per_row": 1}
        began, mine = time.monotonic(), 0
        while time.monotonic() < deadline:
            event = (await client.post("/api/v1/events", json=body, headers=organizer)).json()
            (await client.get(f"/api/v1/events/{event['id']}", headers=organizer)).raise_for_status()
            writes, mine = writes + 1, mine + 1
            await asyncio.sleep(max(0.0, began + mine * writers / write_rate - time.monotonic()))  # pacing

    began = time.perf_counter()
    await asyncio.gather(
        *(reader() for _ in range(target.in_flight)), *(writer() for _ in range(writers if write_rate else 0))
    )
    elapsed = time.perf_counter() - began
    after = await routed(target)
    return Phase(len(latencies), elapsed, latencies, after - before, writes)


async def run(stack: NativeStack, seconds: float, in_flight: int) -> None:
    conn = await asyncpg.connect(stack.primary.direct_url)
    try:
        prefix = await load_events(conn, events=20_000, cities=CITIES)
    finally:
        await conn.close()
    limits = httpx.Limits(max_connections=in_flight + 4, max_keepalive_connections=in_flight + 4)
    async with httpx.AsyncClient(base_url=stack.nginx.url, timeout=30, limits=limits) as client:
        floor_p50 = statistics.median(await health_floor(client))
        organizer = await account(client, stack, organizer=True)
        reader = await account(client, stack)
        target = Target(client, f"{stack.app.url}/metrics", prefix, in_flight, organizer, reader)

        await read_load(target, 1.0)  # warm pools and caches
        with_replica = await read_load(target, seconds)
        stack.replica.stop()
        await read_load(target, 1.0)  # the router notices within its check
        primary_only = await read_load(target, seconds)
        stack.replica.start()
        await read_load(target, 2.0)  # back in rotation once caught up
        mixed = [(rate, await read_load(target, seconds, rate)) for rate in WRITE_RATES]

    print(f"\nread scaling: {in_flight} readers for {seconds:.0f} s per row, a city's event list through Nginx")
    print(f"{'reads served by':<26}{'reads/s':>10}{'p50 ms':>9}{'x floor':>9}{'to primary':>12}")
    for name, phase in (("primary + replica", with_replica), ("primary only", primary_only)):
        p50 = percentile(phase.latencies, 0.5)
        print(
            f"{name:<26}{phase.reads / phase.seconds:>10.0f}{p50 * 1000:>9.1f}{p50 / floor_p50:>9.1f}"
            f"{phase.to_primary:>11.0%}"
        )
    print(f"{'floor /health/live':<26}{'':>10}{floor_p50 * 1000:>9.2f}{1.0:>9.1f}")
    print("\nshare of reads the router sent to the primary, by write rate (writers read their event back at once)")
    print(f"{'writes/s asked':<16}{'writes/s':>10}{'reads/s':>10}{'to primary':>12}  reasons for the primary")
    for rate, phase in mixed:
        reasons = {reason: int(v) for (target, reason), v in phase.routed.items() if target == "primary" and v}
        print(
            f"{rate:<16.0f}{phase.writes / phase.seconds:>10.1f}{phase.reads / phase.seconds:>10.0f}"
            f"{phase.to_primary:>11.1%}  {reasons or '-'}"
        )


def main() -> None:
    run_on_a_private_stack(__doc__ or "", run)


if __name__ == "__main__":
    main()
