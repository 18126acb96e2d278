"""Cold start of the whole native stack, per service and in total, plus the idle stack's memory.

Why a benchmark and not a test: start-up time depends on the machine; a timed assertion would be flaky and prove
nothing. This prints a table; the goal (≤ 20 s on 2 cores) is read by a person. The floor printed beside it is
the time to spawn and reap a trivial process on this machine in the same run. See notes/docker.md.

Run: ``make bench`` or ``.venv/bin/python -m bench.cold_start [--runs N]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from collections import defaultdict
from pathlib import Path

from stack.native.layout import Layout
from stack.native.stack import NativeStack


def memory_kib(pids: list[int]) -> tuple[int, int]:
    """Summed RSS (counts shared pages once per process: PostgreSQL's shared buffers N times) and PSS (fair share)."""
    rss = pss = 0
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = {line.split(":")[0]: int(line.split()[1]) for line in rollup[1:] if line.endswith("kB")}
        rss += fields.get("Rss", 0)
        pss += fields.get("Pss", 0)
    return rss, pss


def spawn_floor_s() -> float:
    began = time.monotonic()
    subprocess.run(["true"], check=True)
    return time.monotonic() - began


def measure_once(timings: dict[str, list[float]], memory: dict[str, list[tuple[int, int]]]) -> None:
    stack = NativeStack(Layout.create(fixed=False))

    def record(line: str) -> None:
        words = line.split()
        if "ready" in words:
            timings[words[0]].append(float(words[-2]))
        elif line.startswith("stack up in"):
            timings["TOTAL"].append(float(words[3]))

    try:
        stack.up(report=record)
        for name, svc in stack.services.items():
            memory[name].append(memory_kib(svc.pids))
        extra = [pid for pid in (stack.fault_proxy.pid, stack.rabbitmq.epmd.pid) if pid is not None]
        memory["fault-proxy+epmd"].append(memory_kib(extra))
    finally:
        stack.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    timings: dict[str, list[float]] = defaultdict(list)
    memory: dict[str, list[tuple[int, int]]] = defaultdict(list)
    floor = min(spawn_floor_s() for _ in range(20))
    for _ in range(args.runs):
        measure_once(timings, memory)
    print(f"\ncold start of the native stack, {args.runs} runs (floor: spawn+reap `true` = {floor * 1000:.1f} ms)")
    print(f"{'step':<14}{'min s':>8}{'median s':>10}{'max s':>8}{'x floor':>10}")
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"{name:<14}{min(values):>8.2f}{median:>10.2f}{max(values):>8.2f}{median / floor:>10.0f}")
    print(f"\nidle memory after start-up (last run)\n{'service':<18}{'RSS MiB':>9}{'PSS MiB':>9}")
    total_rss = total_pss = 0.0
    for name, samples in memory.items():
        rss, pss = (kib / 1024 for kib in samples[-1])
        total_rss, total_pss = total_rss + rss, total_pss + pss
        print(f"{name:<18}{rss:>9.1f}{pss:>9.1f}")
    print(f"{'TOTAL':<18}{total_rss:>9.1f}{total_pss:>9.1f}")


if __name__ == "__main__":
    main()
