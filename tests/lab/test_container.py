"""A container by hand, one test per step, as root on this kernel; see notes/docker.md.

Each step runs for real (unshare, overlayfs, cgroup v1 or v2, whichever holds the controller) and is skipped with
the kernel's reason where the kernel refuses it. What is asserted is what the kernel counts exactly (PIDs,
zombies, oom_kill, whiteouts, exit codes); timings are asserted only as bounds that load cannot break (a
throttled group never gets more CPU than its quota, an ignored SIGTERM leaves the process running for the whole
grace period). After every test nothing the lab made is left: no cgroup, no temp dir, no mount.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from lab.container import cpu_quota, memory_limit, namespaces, overlay, pid_one
from lab.container.cgroups import Hierarchy, LabCgroup, find_hierarchy
from lab.container.refusal import KernelRefusedError
from tests.polling import wait_for

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")
HYBRID_MOUNTS = """\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup2 {unified} cgroup2 rw,relatime 0 0
"""
V2_ONLY_MOUNTS = "cgroup2 {unified} cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0\n"


def measured(step: Callable[[], T]) -> T:
    """Run a step as root; skip with the kernel's words when it refuses."""
    if os.geteuid() != 0:
        pytest.skip("namespaces, cgroups and mounts need root")
    try:
        return step()
    except KernelRefusedError as reason:
        pytest.skip(f"the kernel refused: {reason}")


def lab_leftovers() -> set[str]:
    """Cgroups, temp dirs and mounts named like the lab's, wherever the lab could have made them."""
    roots: set[Path] = set()
    for controller in ("memory", "cpu"):
        try:
            roots.add(find_hierarchy(controller).root)
        except KernelRefusedError:
            continue
    found = {str(p) for root in roots for p in root.glob("refstack-lab-*")}
    found |= {str(p) for p in Path(tempfile.gettempdir()).glob("refstack-lab-overlay-*")}
    return found | {line for line in Path("/proc/self/mountinfo").read_text().splitlines() if "refstack-lab" in line}


@pytest.fixture(autouse=True)
def nothing_left_behind() -> Iterator[None]:
    before = lab_leftovers()
    yield
    assert lab_leftovers() - before == set()


def test_namespaces_make_the_process_pid_1_with_its_own_hostname_and_only_a_loopback() -> None:
    seen = measured(namespaces.run)
    assert seen.container["pid"] == 1
    assert seen.host_pid_of_pid_1 not in (0, 1)
    assert seen.container["processes"] == [1]
    assert seen.container["hostname"] == namespaces.HOSTNAME != seen.host["hostname"]
    assert seen.container["interfaces"] == ["lo"]
    for kind in namespaces.KINDS:
        assert seen.container["namespaces"][kind] != seen.host["namespaces"][kind], kind


def test_overlay_copies_a_written_file_up_and_leaves_a_whiteout_for_a_deleted_one() -> None:
    seen = measured(overlay.run)
    assert seen.container["shell_status"] == 0, seen.container["shell_output"]
    assert seen.container["shell_output"] == "hostname file: lab-container"
    upper = {entry.path: entry.kind for entry in seen.upper}
    assert upper == {"etc/app.conf": "file", "etc/motd": "file", "var/log/old.log": "whiteout (char 0/0)"}
    assert seen.lower_motd == overlay.IMAGE_FILES["etc/motd"]
    assert seen.upper_motd == seen.container["merged_motd"] == seen.lower_motd + "written in the container\n"
    assert seen.lower_still_has_deleted_file
    assert set(seen.container["merged_files"]) == (set(seen.lower_files) - {"var/log/old.log"}) | {"etc/app.conf"}
    assert seen.mounts_left == 0


def test_a_memory_limit_ends_in_the_oom_killer_exit_137_and_counts_it() -> None:
    seen = measured(memory_limit.run)
    assert seen.exit_code == 137, seen.output
    assert seen.oom_kills_after == seen.oom_kills_before + 1
    assert seen.limit_hits > 0
    assert 0 < seen.peak_bytes <= seen.limit_bytes


def test_a_cpu_quota_throttles_while_os_cpu_count_still_reports_the_host() -> None:
    seen = measured(cpu_quota.run)
    assert seen.cpu_count == os.cpu_count()
    assert seen.affinity == len(os.sched_getaffinity(0))
    assert seen.cgroup_cpu_limit == cpu_quota.QUOTA_US / cpu_quota.PERIOD_US
    assert len(seen.worker_cpu_seconds) == seen.cpu_count
    assert seen.workers_by_quota == 1
    assert 0 < seen.throttled_periods <= seen.periods
    assert seen.throttled_s > 0
    # The group never gets more than its quota: 0.5 CPU-seconds per wall second, plus one period at each end.
    assert sum(seen.worker_cpu_seconds) <= seen.cgroup_cpu_limit * seen.wall_s + 2 * cpu_quota.QUOTA_US / 1e6


def test_pid_1_without_a_handler_ignores_sigterm_and_keeps_zombies() -> None:
    seen = measured(pid_one.stop_bare)
    assert seen.program_pid == 1
    assert seen.zombies == pid_one.ORPHANS
    assert seen.needed_sigkill
    assert seen.seconds_to_exit >= pid_one.GRACE_S


def test_a_tiny_init_forwards_sigterm_and_reaps_every_orphan() -> None:
    seen = measured(pid_one.stop_under_init)
    assert seen.program_pid == 2
    assert seen.zombies == 0
    assert seen.exit_code == 128 + 15
    assert seen.seconds_to_exit < pid_one.GRACE_S
    assert seen.reaped_by_init == pid_one.ORPHANS


def fail_with_a_process_inside(name: str, started: list[subprocess.Popen[bytes]]) -> None:
    with LabCgroup(name, ("memory",)) as group:
        procs = group.procs_files()[0]
        started.append(subprocess.Popen(["sh", "-c", f"echo $$ > {procs}; exec sleep 20"]))
        wait_for(lambda: started[0].pid in group.pids(), timeout_s=5, what="the sleeper to join the cgroup")
        raise RuntimeError("the step failed")


def test_a_failing_step_still_kills_what_is_in_its_cgroup_and_removes_it() -> None:
    name = f"refstack-lab-test-{os.getpid()}"
    started: list[subprocess.Popen[bytes]] = []
    with pytest.raises(RuntimeError, match="the step failed"):
        measured(lambda: fail_with_a_process_inside(name, started))
    assert started[0].wait(timeout=5) == -9
    assert not (find_hierarchy("memory").root / name).exists()


@pytest.mark.parametrize(("mounts", "version"), [(HYBRID_MOUNTS, 1), (V2_ONLY_MOUNTS, 2)], ids=["hybrid", "v2-only"])
def test_the_hierarchy_of_a_controller_is_found_on_v1_beside_v2_and_on_v2_alone(
    tmp_path: Path, mounts: str, version: int
) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids\n" if version == 2 else "hugetlb\n")
    text = mounts.format(unified=tmp_path)
    expected_root = tmp_path if version == 2 else Path("/sys/fs/cgroup/memory")
    assert find_hierarchy("memory", text) == Hierarchy("memory", version, expected_root)
    assert find_hierarchy("hugetlb", text) == Hierarchy("hugetlb", 2, tmp_path)
    with pytest.raises(KernelRefusedError, match="no mounted cgroup hierarchy has the rdma controller"):
        find_hierarchy("rdma", text)


def test_the_command_prints_one_table_per_step() -> None:
    if os.geteuid() != 0:
        pytest.skip("namespaces need root")
    run = subprocess.run(
        [sys.executable, "-m", "lab.container", "namespaces"], cwd=REPO, capture_output=True, text=True, timeout=30
    )
    assert run.returncode in (0, 2), run.stderr
    assert run.stdout.startswith("namespaces: ") or "refused by the kernel" in run.stdout
