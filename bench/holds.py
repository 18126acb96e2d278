"""Holds under 1000-way contention through Nginx: throughput, latency percentiles, seats sold vs available, oversold.

Why a benchmark beside the contention test: the test proves *correctness* (never oversold) and asserts no timing;
this prints how fast the same storm runs on this machine, against a floor measured in the same run (the latency
of ``GET /health/live`` through the same Nginx and app, which does no database work). See notes/postgres.md,
"Contention".

Run: ``make bench`` or ``.venv/bin/python -m bench.holds [--attempts 1000 --seats 50 --in-flight 50]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import Counter
from typing import Any

import httpx

from bench.through_nginx import account, health_floor, percentile
from stack.native.layout import Layout
from stack.native.stack import NativeStack
from stack.native.web import UNTHROTTLED


async def storm(stack: NativeStack, attempts: int, seats: int, in_flight: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(base_url=stack.nginx.url, timeout=30, limits=limits) as client:
        floor = await health_floor(client)
        organizer = await account(client, stack, organizer=True)
        body = {
            "title": "Bench",
            "city": "Bench",
            "venue": "Hall",
            "starts_at": "2030-01-01T20:00:00+00:00",
            "price_cents": 100,
            "rows": 1,
            "seats_per_row": seats,
        }
        event = (await client.post("/api/v1/events", json=body, headers=organizer)).json()
        seat_ids = [s["id"] for s in (await client.get(f"/api/v1/events/{event['id']}/seats")).json()["items"]]
        buyers = await asyncio.gather(*(account(client, stack) for _ in range(20)))
        gate = asyncio.Semaphore(in_flight)
        latencies: list[float] = []

        async def attempt(n: int) -> int:
            async with gate:
                began = time.perf_counter()
                answer = await client.post(
                    f"/api/v1/events/{event['id']}/holds",
                    json={"seat_ids": [seat_ids[n % seats]]},
                    headers=buyers[n % len(buyers)],
                )
                latencies.append(time.perf_counter() - began)
                return answer.status_code

        began = time.perf_counter()
        statuses = Counter(await asyncio.gather(*(attempt(n) for n in range(attempts))))
        elapsed = time.perf_counter() - began
    held = int(
        stack.primary.sql(
            f"select count(*) from seat where event_id = '{event['id']}' and status <> 'available'", "refstack"
        )
    )
    return {
        "elapsed": elapsed,
        "statuses": statuses,
        "latencies": latencies,
        "floor": floor,
        "held": held,
        "oversold": max(0, statuses[201] - seats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--attempts", type=int, default=1000)
    parser.add_argument("--seats", type=int, default=50)
    parser.add_argument("--in-flight", type=int, default=50)
    args = parser.parse_args()
    # One client address and 20 buyers sharing 1000 attempts: neither the edge's per-IP limits, nor the per-account
    # hold cap, nor the per-account rate limit may shape what this measures (notes/security.md, "Rate limits";
    # notes/redis.md, "Rate limits in one round trip").
    stack = NativeStack(
        Layout.create(fixed=False),
        app_settings={
            "REFSTACK_MAX_ACTIVE_HOLDS_PER_USER": str(args.seats),
            "REFSTACK_RATE_LIMIT_HOLDS": str(min(max(args.attempts, 1), 100_000)),
        },
        edge_limits=UNTHROTTLED,
    )
    try:
        stack.up(report=lambda _: None)
        result = asyncio.run(storm(stack, args.attempts, args.seats, args.in_flight))
    finally:
        stack.down()
    lat, floor = result["latencies"], result["floor"]
    floor_p50 = statistics.median(floor)
    print(
        f"\nholds under contention: {args.attempts} attempts on {args.seats} seats, {args.in_flight} in flight, "
        "through Nginx → 2 uvicorn workers → PostgreSQL primary"
    )
    print(f"{'metric':<28}{'value':>12}{'x floor':>10}")
    print(f"{'throughput (attempts/s)':<28}{args.attempts / result['elapsed']:>12.0f}")
    for name, q in (("p50 latency (ms)", 0.5), ("p99 latency (ms)", 0.99)):
        value = percentile(lat, q)
        print(f"{name:<28}{value * 1000:>12.1f}{value / floor_p50:>10.1f}")
    print(f"{'floor p50 /health/live (ms)':<28}{floor_p50 * 1000:>12.2f}{1.0:>10.1f}")
    print(f"{'seats held / available':<28}{result['held']:>8} / {args.seats}")
    print(f"{'answers':<28}{json.dumps(dict(sorted(result['statuses'].items()))):>12}")
    print(f"{'oversold':<28}{result['oversold']:>12}")


if __name__ == "__main__":
    main()
