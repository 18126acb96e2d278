"""The GIL: CPU-bound Python on threads runs one thread at a time, processes run at once, I/O-bound threads overlap.

Why parallelism is measured as CPU seconds over wall seconds (summed over the workers, from the first start to the
last end) rather than as a speed-up: the machine is shared and its load changes under a test, so wall times drift.
Under the GIL the threads of one process can never execute bytecode at the same instant, so their parallelism
stays at or below 1 however loaded the machine is; processes can pass 1 when a second core is free. The event
loop's blocking is counted, not timed: ticks of a 1 ms ticker that fall inside the CPU work. See notes/python.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import sys
import sysconfig
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from multiprocessing.queues import SimpleQueue
from multiprocessing.synchronize import Barrier

from lab.table import Table

TICK_S = 0.001
HASH_ROUNDS = 32


@dataclass(frozen=True)
class Span:
    """One worker's CPU seconds and the monotonic instants it started and ended (comparable across processes)."""

    cpu_s: float
    started: float
    ended: float


@dataclass(frozen=True)
class Run:
    label: str
    wall_s: float
    cpu_s: float
    loop_ticks: int | None = None

    @property
    def parallelism(self) -> float:
        return self.cpu_s / self.wall_s


def burn(iterations: int) -> int:
    """Pure-Python CPU work: the interpreter loop never releases the GIL voluntarily here."""
    total = 0
    for i in range(iterations):
        total += i * i
    return total


def timed(job: Callable[[], object]) -> Span:
    started, cpu_before = time.monotonic(), time.thread_time()
    job()
    return Span(time.thread_time() - cpu_before, started, time.monotonic())


def timed_burn(iterations: int) -> Span:
    return timed(partial(burn, iterations))


def combined(label: str, spans: list[Span], loop_ticks: int | None = None) -> Run:
    wall = max(s.ended for s in spans) - min(s.started for s in spans)
    return Run(label, wall, sum(s.cpu_s for s in spans), loop_ticks)


def serial(workers: int, iterations: int) -> Run:
    return combined("serial", [timed_burn(iterations) for _ in range(workers)])


def sha256_rounds(data: bytes, rounds: int) -> bytes:
    """C work that releases the GIL: hashlib lets go of it while hashing a buffer larger than 2 KiB."""
    digest = hashlib.sha256()
    for _ in range(rounds):
        digest.update(data)
    return digest.digest()


def threads_started_together(label: str, workers: int, job: Callable[[], Span]) -> Run:
    start_together = threading.Barrier(workers)

    def work() -> Span:
        start_together.wait(timeout=10)
        return job()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        spans = [f.result(timeout=60) for f in [pool.submit(work) for _ in range(workers)]]
    return combined(label, spans)


def on_threads(workers: int, iterations: int) -> Run:
    return threads_started_together(f"{workers} threads", workers, partial(timed_burn, iterations))


def hashing_on_threads(workers: int, rounds: int) -> Run:
    """``rounds`` updates of a 4 MiB buffer on each thread."""
    job = partial(timed, partial(sha256_rounds, bytes(4 * 1024 * 1024), rounds))
    return threads_started_together(f"{workers} threads, sha256 of {rounds * 4} MiB", workers, job)


def process_worker(start_together: Barrier, iterations: int, results: SimpleQueue[Span]) -> None:
    start_together.wait(timeout=10)
    results.put(timed_burn(iterations))


def on_processes(workers: int, iterations: int) -> Run:
    """forkserver, not fork: forking a process that runs threads (pytest's, a pool's) can copy a held lock."""
    context = multiprocessing.get_context("forkserver")
    start_together = context.Barrier(workers)
    results: SimpleQueue[Span] = context.SimpleQueue()
    arguments = (start_together, iterations, results)
    processes = [context.Process(target=process_worker, args=arguments) for _ in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    if any(p.exitcode != 0 for p in processes):
        raise RuntimeError(f"a worker process failed: exit codes {[p.exitcode for p in processes]}")
    return combined(f"{workers} processes", [results.get() for _ in processes])


async def burn_on_loop(iterations: int) -> Span:
    return timed_burn(iterations)


async def on_event_loop(workers: int, iterations: int, *, offload: bool) -> Run:
    """CPU work in coroutines (the loop is blocked) or handed to threads with ``asyncio.to_thread`` (it is not)."""
    ticks: list[float] = []

    async def tick() -> None:
        while True:
            await asyncio.sleep(TICK_S)
            ticks.append(time.monotonic())

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)  # one turn of the loop: the ticker is waiting before the work starts
    if offload:
        spans = await asyncio.gather(*(asyncio.to_thread(timed_burn, iterations) for _ in range(workers)))
    else:
        spans = await asyncio.gather(*(burn_on_loop(iterations) for _ in range(workers)))
    ticker.cancel()
    with suppress(asyncio.CancelledError):
        await ticker
    first, last = min(s.started for s in spans), max(s.ended for s in spans)
    label = f"asyncio, {workers} coroutines" + (" + to_thread" if offload else "")
    return combined(label, list(spans), loop_ticks=sum(first < t < last for t in ticks))


def blocking_calls(workers: int, pause_s: float, *, threaded: bool) -> float:
    """Wall seconds for ``workers`` blocking calls that release the GIL (``time.sleep`` stands in for a socket read)."""
    started = time.monotonic()
    if threaded:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(time.sleep, [pause_s] * workers))
    else:
        for _ in range(workers):
            time.sleep(pause_s)
    return time.monotonic() - started


def gil_enabled() -> bool:
    """True on a default build; ``sys._is_gil_enabled`` exists from 3.13, where a free-threaded build may say False."""
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return True if is_enabled is None else bool(is_enabled())


def free_threaded_build() -> bool:
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def cpu_bound_runs(workers: int, iterations: int) -> list[Run]:
    return [
        serial(workers, iterations),
        on_threads(workers, iterations),
        on_processes(workers, iterations),
        hashing_on_threads(workers, HASH_ROUNDS),
        asyncio.run(on_event_loop(workers, iterations, offload=False)),
        asyncio.run(on_event_loop(workers, iterations, offload=True)),
    ]


def report(workers: int = 2, iterations: int = 3_000_000) -> list[Table]:
    runs = cpu_bound_runs(workers, iterations)
    cpu = Table(
        f"CPU-bound: {workers} x {iterations:,} loop iterations (Python {sys.version.split()[0]}, "
        f"GIL enabled: {gil_enabled()}, free-threaded build: {free_threaded_build()}, "
        f"switch interval {sys.getswitchinterval() * 1000:.0f} ms)",
        ("how", "wall s", "CPU s", "parallelism", "loop ticks in work"),
        [(r.label, r.wall_s, r.cpu_s, r.parallelism, "" if r.loop_ticks is None else r.loop_ticks) for r in runs],
    )
    calls, pause_s = 8, 0.05
    io = Table(
        f"I/O-bound: {calls} blocking calls of {pause_s * 1000:.0f} ms each",
        ("how", "wall s"),
        [
            ("serial", blocking_calls(calls, pause_s, threaded=False)),
            (f"{calls} threads", blocking_calls(calls, pause_s, threaded=True)),
        ],
    )
    return [cpu, io]
