"""Control groups by hand: find where a controller lives (v1 or v2), make a group, put a process in it, remove it.

A controller belongs to one hierarchy at a time. This machine mounts memory and cpu as cgroup v1 hierarchies beside
a cgroup v2 one that holds nothing but hugetlb; a laptop with systemd mounts only v2 at /sys/fs/cgroup. So the lab
asks /proc/self/mounts per controller instead of assuming either. A group is a directory: `mkdir` creates it,
writing a PID to its `cgroup.procs` moves that process in, and `rmdir` removes it once no process is left.
`LabCgroup` kills what is still inside by PID and removes the directories even when the step fails. The quota a
process runs under is read from its own /proc/self/cgroup path, walking up to the root, because os.cpu_count()
never looks at it. See notes/docker.md.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from lab.container.refusal import KernelRefusedError

MOUNTS = Path("/proc/self/mounts")
EMPTY_DEADLINE_S = 5.0


@dataclass(frozen=True)
class Hierarchy:
    """Where one controller's groups live: a v1 hierarchy of its own, or the v2 unified hierarchy."""

    controller: str
    version: int
    root: Path


def find_hierarchy(controller: str, mounts_text: str | None = None) -> Hierarchy:
    """The mounted hierarchy that holds ``controller``; a v1 mount names it in its options, v2 in cgroup.controllers."""
    text = MOUNTS.read_text() if mounts_text is None else mounts_text
    unified: list[Path] = []
    for line in text.splitlines():
        _, mount_point, fs_type, options, *_ = line.split()
        if fs_type == "cgroup" and controller in options.split(","):
            return Hierarchy(controller, 1, Path(mount_point))
        if fs_type == "cgroup2":
            unified.append(Path(mount_point))
    for root in unified:
        if controller in (root / "cgroup.controllers").read_text().split():
            return Hierarchy(controller, 2, root)
    raise KernelRefusedError(f"no mounted cgroup hierarchy has the {controller} controller")


def groups_of(pid: int) -> dict[str, str]:
    """The cgroup path of ``pid`` per controller from /proc/<pid>/cgroup; the v2 path is under the key ''."""
    paths: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def group_directory(hierarchy: Hierarchy, pid: int) -> Path:
    """The directory of the group ``pid`` is in, within ``hierarchy``."""
    paths = groups_of(pid)
    path = paths[hierarchy.controller] if hierarchy.version == 1 else paths[""]
    return hierarchy.root / path.lstrip("/")


def cpu_limit_of(pid: int) -> float | None:
    """CPUs' worth of time the cpu quota of ``pid``'s group and its ancestors allow (the tightest), None if none.

    v1: cpu.cfs_quota_us / cpu.cfs_period_us, -1 meaning no quota; v2: cpu.max, "max 100000" meaning none."""
    hierarchy = find_hierarchy("cpu")
    directory = group_directory(hierarchy, pid)
    limits: list[float] = []
    for group in [directory, *directory.parents]:
        if not group.is_relative_to(hierarchy.root):
            break
        if hierarchy.version == 1:
            quota = int((group / "cpu.cfs_quota_us").read_text())
            if quota > 0:
                limits.append(quota / int((group / "cpu.cfs_period_us").read_text()))
        elif (group / "cpu.max").exists():
            quota_text, period_text = (group / "cpu.max").read_text().split()
            if quota_text != "max":
                limits.append(int(quota_text) / int(period_text))
    return min(limits) if limits else None


def counters(file: Path) -> dict[str, int]:
    """A flat-keyed cgroup file (cpu.stat, memory.events, memory.oom_control) as name → number."""
    pairs = (line.split() for line in file.read_text().splitlines())
    return {name: int(value) for name, value in pairs}


class LabCgroup:
    """One group per controller's hierarchy, named for this run; removed with everything in it on exit.

    On v1 each controller has its own directory (cpu and memory may be two); on v2 they share one, and the
    parent must hand the controller down through cgroup.subtree_control first."""

    def __init__(self, name: str, controllers: tuple[str, ...]) -> None:
        self.hierarchies = {c: find_hierarchy(c) for c in controllers}
        self.directories = {c: h.root / name for c, h in self.hierarchies.items()}
        self._made: list[Path] = []

    def __enter__(self) -> LabCgroup:
        try:
            for controller, hierarchy in self.hierarchies.items():
                if hierarchy.version == 2:
                    self._hand_down(hierarchy)
                directory = self.directories[controller]
                if directory not in self._made:
                    directory.mkdir()
                    self._made.append(directory)
        except OSError as error:
            self.remove()
            raise KernelRefusedError.from_os_error(f"making cgroup {self.directories}", error) from error
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.remove()

    @staticmethod
    def _hand_down(hierarchy: Hierarchy) -> None:
        subtree = hierarchy.root / "cgroup.subtree_control"
        if hierarchy.controller not in subtree.read_text().split():
            subtree.write_text(f"+{hierarchy.controller}")

    def version(self, controller: str) -> int:
        return self.hierarchies[controller].version

    def file(self, controller: str, name: str) -> Path:
        return self.directories[controller] / name

    def procs_files(self) -> list[Path]:
        """Every cgroup.procs a process must be written to, to be in this group for all its controllers."""
        return [directory / "cgroup.procs" for directory in self._made]

    def pids(self) -> set[int]:
        return {int(pid) for procs in self.procs_files() for pid in procs.read_text().split()}

    def remove(self) -> None:
        """SIGKILL every process still in the group (by PID), wait until it is empty (bounded), rmdir it."""
        if not self._made:
            return
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + EMPTY_DEADLINE_S
        for directory in reversed(self._made):
            while directory.exists():
                try:
                    directory.rmdir()
                except OSError:  # EBUSY until the killed processes have left the group
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)  # sleep-ok: poll interval of a deadline-bound removal
        self._made.clear()
