"""Step 3: a memory limit on a cgroup, and the kernel's OOM killer enforcing it (exit 137, the event counted).

`docker run --memory 64m` writes 64 MiB into the container's cgroup (memory.max on v2, memory.limit_in_bytes on
v1, with swap capped too so the limit cannot be dodged by swapping). A process that then touches 200 MB is not
told "no" by malloc: the pages are charged as they are written, reclaim fails at the limit, and the OOM killer
picks a process in that cgroup and sends SIGKILL, which no handler can catch. Docker reports 137 (128 + 9) and
OOMKilled=true, read from the cgroup's oom_kill counter, the one read here. See notes/docker.md.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lab.container.cgroups import LabCgroup, counters
from lab.container.namespaced_process import REPO, exit_code, workload
from lab.table import Table

LIMIT_MIB = 64
ALLOCATE_MIB = 200
MIB = 1 << 20
MEMINFO = Path("/proc/meminfo")


@dataclass(frozen=True)
class OomSeen:
    cgroup_version: int
    limit_bytes: int
    allocate_mib: int
    exit_code: int
    oom_kills_before: int
    oom_kills_after: int
    limit_hits: int
    peak_bytes: int
    output: str

    def table(self) -> Table:
        rows: list[tuple[str | int, ...]] = [
            ("cgroup version of the memory controller", f"v{self.cgroup_version}"),
            ("memory limit", f"{self.limit_bytes // MIB} MiB"),
            ("the process writes", f"{self.allocate_mib} MiB"),
            ("exit code (128 + SIGKILL)", self.exit_code),
            ("oom_kill counter before -> after", f"{self.oom_kills_before} -> {self.oom_kills_after}"),
            ("charges refused at the limit (failcnt / events max)", self.limit_hits),
            ("peak usage", f"{self.peak_bytes / MIB:.1f} MiB"),
        ]
        return Table("memory: a 64 MiB cgroup limit and the OOM killer", ("", "measured"), rows)


def oom_kills(group: LabCgroup) -> int:
    name = "memory.oom_control" if group.version("memory") == 1 else "memory.events"
    return counters(group.file("memory", name))["oom_kill"]


def swap_configured() -> bool:
    swap_total = next(line for line in MEMINFO.read_text().splitlines() if line.startswith("SwapTotal:"))
    return int(swap_total.split()[1]) > 0


def limit(group: LabCgroup, limit_bytes: int) -> None:
    if group.version("memory") == 1:
        group.file("memory", "memory.limit_in_bytes").write_text(str(limit_bytes))
        if swap_configured():  # memory + swap; with no swap device this kernel then counts no failures at all
            group.file("memory", "memory.memsw.limit_in_bytes").write_text(str(limit_bytes))
    else:
        group.file("memory", "memory.max").write_text(str(limit_bytes))
        swap = group.file("memory", "memory.swap.max")
        if swap.exists():
            swap.write_text("0")


def limit_hits_and_peak(group: LabCgroup) -> tuple[int, int]:
    if group.version("memory") == 1:
        kind = "memsw." if swap_configured() else ""
        failcnt = int(group.file("memory", f"memory.{kind}failcnt").read_text())
        return failcnt, int(group.file("memory", "memory.max_usage_in_bytes").read_text())
    peak = group.file("memory", "memory.peak")  # Linux 5.19+
    peak_bytes = int(peak.read_text()) if peak.exists() else 0
    return counters(group.file("memory", "memory.events"))["max"], peak_bytes


def run() -> OomSeen:
    with LabCgroup(f"refstack-lab-memory-{os.getpid()}", ("memory",)) as group:
        limit(group, LIMIT_MIB * MIB)
        before = oom_kills(group)
        joins = [argument for procs in group.procs_files() for argument in ("--join", str(procs))]
        process = subprocess.run(
            workload("allocate", "--mib", str(ALLOCATE_MIB), *joins),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        hits, peak = limit_hits_and_peak(group)
        return OomSeen(
            cgroup_version=group.version("memory"),
            limit_bytes=LIMIT_MIB * MIB,
            allocate_mib=ALLOCATE_MIB,
            exit_code=exit_code(process.returncode),
            oom_kills_before=before,
            oom_kills_after=oom_kills(group),
            limit_hits=hits,
            peak_bytes=peak,
            output=(process.stdout + process.stderr).strip(),
        )
