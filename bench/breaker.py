"""What sharing the payments breaker through Redis costs per call, and what a frozen Redis costs it.

Why a benchmark and not a test: microseconds depend on the machine and its neighbours; a timed assertion would be
flaky and prove nothing. One private ``redis-server`` on loopback, one asyncio client, a guarded call that returns
at once (so only the breaker is measured): a local breaker beside the shared one (three exchanges per call), one
exchange alone, then Redis SIGSTOPped for a few seconds: how many calls waited for the 75 ms bound and how long.
See notes/redis.md, "One breaker for all workers".

Run: ``.venv/bin/python -m bench.breaker [--calls N] [--frozen-s S]``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import time
import uuid

from redis.asyncio import Redis

from app.cache.client import open_redis
from app.resilience.breaker import AsyncCircuitBreaker
from app.resilience.shared_circuit import MirroredStorage, RedisCircuitState
from app.settings import Settings
from stack.native.brokers import RedisServer
from stack.native.layout import Layout

SLOW_S = 0.02  # a call slower than this waited on Redis (a local call takes microseconds)
BOUND_S = Settings.model_fields["breaker_exchange_timeout_s"].default  # the production bound on one exchange


async def returns_at_once() -> str:
    return "ok"


def breaker(redis: Redis | None) -> AsyncCircuitBreaker:
    shared = RedisCircuitState(redis, f"bench-{uuid.uuid4()}", timeout_s=BOUND_S) if redis is not None else None
    return AsyncCircuitBreaker(name="bench", fail_max=5, reset_timeout_s=10.0, shared=shared)


async def per_call_us(guarded: AsyncCircuitBreaker, calls: int, rounds: int = 5) -> float:
    """The median over ``rounds`` of the mean time per call, in microseconds."""
    for _ in range(calls // 10):
        await guarded.call(returns_at_once)
    means = []
    for _ in range(rounds):
        began = time.perf_counter()
        for _ in range(calls):
            await guarded.call(returns_at_once)
        means.append((time.perf_counter() - began) / calls * 1e6)
    return statistics.median(means)


async def exchange_us(redis: Redis, calls: int) -> float:
    state, storage = (
        RedisCircuitState(redis, f"bench-{uuid.uuid4()}", timeout_s=BOUND_S),
        MirroredStorage(recording=True),
    )
    began = time.perf_counter()
    for _ in range(calls):
        await state.exchange(storage)
    return (time.perf_counter() - began) / calls * 1e6


async def while_frozen(server: RedisServer, redis: Redis, seconds: float) -> tuple[int, list[float]]:
    """Calls made every 10 ms while Redis is SIGSTOPped: how many, and the milliseconds of the slow ones."""
    guarded = breaker(redis)
    await guarded.call(returns_at_once)
    server.pause()
    try:
        calls, slow_ms = 0, []
        began = time.perf_counter()
        while time.perf_counter() - began < seconds:
            started = time.perf_counter()
            await guarded.call(returns_at_once)
            took = time.perf_counter() - started
            calls += 1
            if took > SLOW_S:
                slow_ms.append(took * 1000)
            await asyncio.sleep(0.01)  # sleep-ok: the pace of the measured calls, not a synchronisation
        return calls, slow_ms
    finally:
        server.resume()


async def measure(server: RedisServer, calls: int, frozen_s: float) -> None:
    redis = open_redis(Settings(redis_url=server.direct_url))
    try:
        local = await per_call_us(breaker(None), calls)
        shared = await per_call_us(breaker(redis), calls)
        one_exchange = await exchange_us(redis, calls)
        frozen_calls, slow_ms = await while_frozen(server, redis, frozen_s)
    finally:
        await redis.aclose()
    print(f"{'what':<44} {'value':>12}")
    print(f"{'local breaker, per call':<44} {local:>9.1f} µs")
    print(f"{'shared breaker, per call (3 exchanges)':<44} {shared:>9.1f} µs")
    print(f"{'one exchange (the Lua script, a read)':<44} {one_exchange:>9.1f} µs")
    print(f"{f'Redis frozen {frozen_s:.0f} s: calls made':<44} {frozen_calls:>12}")
    print(f"{'... of which waited on Redis':<44} {len(slow_ms):>12}")
    waits = ", ".join(f"{ms:.0f}" for ms in slow_ms)
    print(f"{'... their times (ms)':<44} {waits:>12}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--frozen-s", type=float, default=3.0)
    args = parser.parse_args()
    layout = Layout.create(fixed=False)
    server = RedisServer(layout)
    try:
        server.start()
        asyncio.run(measure(server, args.calls, args.frozen_s))
    finally:
        server.stop()
        shutil.rmtree(layout.base, ignore_errors=True)


if __name__ == "__main__":
    main()
