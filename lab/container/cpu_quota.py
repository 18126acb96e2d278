"""Step 4: a CPU quota on a cgroup, the throttling it causes, and why os.cpu_count() sizes a worker pool wrong.

`docker run --cpus 0.5` becomes a CFS quota: 50 ms of CPU time per 100 ms period for the whole group (cpu.max on
v2, cpu.cfs_quota_us / cpu.cfs_period_us on v1). Once the group's processes have used the 50 ms, all of them wait
for the next period: that is throttling, counted in cpu.stat (nr_throttled periods, throttled time). A quota is
time, not cores, so nothing the process asks the usual way sees it: os.cpu_count() reports the host's CPUs and
os.sched_getaffinity() the CPUs it may run on (a cpuset, `--cpuset-cpus`, would shrink that one). A pool sized by
os.cpu_count() here starts as many busy workers as the host has cores, and each gets a fraction of what one would
get. The quota has to be read from the process's own cgroup (lab/container/cgroups.py, cpu_limit_of). See
notes/docker.md.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from dataclasses import dataclass

from lab.container.cgroups import LabCgroup, counters
from lab.container.namespaced_process import REPO, workload
from lab.table import Table

QUOTA_US = 50_000
PERIOD_US = 100_000
BURN_S = 1.0


@dataclass(frozen=True)
class ThrottlingSeen:
    cgroup_version: int
    cpu_count: int
    affinity: int
    cgroup_cpu_limit: float
    worker_cpu_seconds: list[float]
    wall_s: float
    periods: int
    throttled_periods: int
    throttled_s: float

    @property
    def workers_by_quota(self) -> int:
        return max(1, math.floor(self.cgroup_cpu_limit))

    def table(self) -> Table:
        per_worker = ", ".join(f"{s:.2f}" for s in self.worker_cpu_seconds)
        rows: list[tuple[str | int | float, ...]] = [
            ("cgroup version of the cpu controller", f"v{self.cgroup_version}"),
            ("quota", f"{QUOTA_US // 1000} ms per {PERIOD_US // 1000} ms"),
            ("os.cpu_count() inside the group", self.cpu_count),
            ("len(os.sched_getaffinity(0)) inside the group", self.affinity),
            ("CPUs the quota allows, read from the cgroup", self.cgroup_cpu_limit),
            ("workers sized by os.cpu_count() / by the quota", f"{self.cpu_count} / {self.workers_by_quota}"),
            (f"wall time the workers ran (each spins {BURN_S:.0f} s)", f"{self.wall_s:.2f} s"),
            ("CPU seconds each worker got", per_worker),
            ("CPU seconds all workers got together", sum(self.worker_cpu_seconds)),
            ("periods / periods throttled (cpu.stat)", f"{self.periods} / {self.throttled_periods}"),
            ("time throttled (cpu.stat)", f"{self.throttled_s:.2f} s"),
        ]
        return Table("cpu: a 0.5-CPU quota, throttling, and os.cpu_count()", ("", "measured"), rows)


def set_quota(group: LabCgroup) -> None:
    """The quota, and ten times the default weight: on a busy machine the group then wins its share from its
    neighbours, so what stops it is the quota (a ceiling), not the competition (a quota reserves nothing)."""
    if group.version("cpu") == 1:
        group.file("cpu", "cpu.cfs_period_us").write_text(str(PERIOD_US))
        group.file("cpu", "cpu.cfs_quota_us").write_text(str(QUOTA_US))
        group.file("cpu", "cpu.shares").write_text(str(10 * 1024))
    else:
        group.file("cpu", "cpu.max").write_text(f"{QUOTA_US} {PERIOD_US}")
        group.file("cpu", "cpu.weight").write_text(str(10 * 100))


def throttling(group: LabCgroup) -> tuple[int, int, float]:
    """(periods, periods throttled, seconds throttled); v1 counts nanoseconds, v2 microseconds."""
    stat = counters(group.file("cpu", "cpu.stat"))
    throttled_s = stat["throttled_time"] / 1e9 if group.version("cpu") == 1 else stat["throttled_usec"] / 1e6
    return stat["nr_periods"], stat["nr_throttled"], throttled_s


def run() -> ThrottlingSeen:
    workers = os.cpu_count() or 1  # the pitfall, on purpose: a pool sized by the host's cores
    with LabCgroup(f"refstack-lab-cpu-{os.getpid()}", ("cpu",)) as group:
        set_quota(group)
        joins = [argument for procs in group.procs_files() for argument in ("--join", str(procs))]
        burned = subprocess.run(
            workload("burn", "--workers", str(workers), "--seconds", str(BURN_S), *joins),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        seen = json.loads(burned.stdout)
        periods, throttled_periods, throttled_s = throttling(group)
        return ThrottlingSeen(
            cgroup_version=group.version("cpu"),
            cpu_count=seen["cpu_count"],
            affinity=seen["affinity"],
            cgroup_cpu_limit=seen["cgroup_cpu_limit"],
            worker_cpu_seconds=seen["worker_cpu_seconds"],
            wall_s=seen["wall_seconds"],
            periods=periods,
            throttled_periods=throttled_periods,
            throttled_s=throttled_s,
        )
