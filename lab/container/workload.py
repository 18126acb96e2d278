"""What runs inside the lab's containers: small stdlib-only programs, each bounded in time, each printing JSON.

`python -m lab.container.workload <program> ...` is started by the steps under `unshare` or in a cgroup:
`inspect` reports what a process in new namespaces sees, `overlay` mounts the overlay root and changes it from a
shell chrooted into it, `allocate` and `burn` join a cgroup and then use memory or CPU, `orphans` leaves zombies
for PID 1 to reap and then waits for a signal it has no handler for. See notes/docker.md.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from lab.container.cgroups import cpu_limit_of

NAMESPACES = ("pid", "mnt", "uts", "ipc", "net")
MIB = 1 << 20
# Runs as the container's own /bin/sh after chroot: change a file of the image, add one, delete one.
OVERLAY_SCRIPT = (
    'read name < /etc/hostname; echo "hostname file: $name"; '
    "echo 'written in the container' >> /etc/motd; "
    "echo 'mode = container' > /etc/app.conf; "
    "rm /var/log/old.log"
)


def emit(report: dict[str, object]) -> None:
    print(json.dumps(report), flush=True)


def join(procs_files: list[str]) -> None:
    """Move this process into a cgroup (one cgroup.procs per hierarchy) before it does anything else."""
    for procs in procs_files:
        Path(procs).write_text(str(os.getpid()))


def inspect(hostname: str) -> None:
    socket.sethostname(hostname)
    emit(
        {
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
            "interfaces": [name for _, name in socket.if_nameindex()],
            "processes": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
            "namespaces": {ns: os.readlink(f"/proc/self/ns/{ns}") for ns in NAMESPACES},
        }
    )


def overlay(base: Path) -> None:
    merged = base / "merged"
    options = f"lowerdir={base / 'lower'},upperdir={base / 'upper'},workdir={base / 'work'}"
    mounted = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", options, str(merged)], capture_output=True, text=True, check=False
    )
    if mounted.returncode != 0:
        emit({"refused": mounted.stderr.strip()})
        return
    shell = subprocess.run(
        ["chroot", str(merged), "/bin/sh", "-c", OVERLAY_SCRIPT],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    emit(
        {
            "shell_status": shell.returncode,
            "shell_output": (shell.stdout + shell.stderr).strip(),
            "merged_files": sorted(str(p.relative_to(merged)) for p in merged.rglob("*") if not p.is_dir()),
            "merged_motd": (merged / "etc/motd").read_text(),
        }
    )


def allocate(procs_files: list[str], mib: int) -> None:
    join(procs_files)
    held = [b"\x01" * MIB for _ in range(mib)]  # written, so every page is really charged to the cgroup
    emit({"allocated_mib": len(held)})


def burn(procs_files: list[str], workers: int, seconds: float) -> None:
    """Report the CPUs this process is told about, then spin ``workers`` forked processes for ``seconds`` each."""
    join(procs_files)
    affinity = len(os.sched_getaffinity(0))
    reader, writer = os.pipe()
    started = time.monotonic()
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                pass
            os.write(writer, f"{time.process_time()}\n".encode())
            os._exit(0)
        children.append(pid)
    os.close(writer)
    for pid in children:
        os.waitpid(pid, 0)
    wall_s = time.monotonic() - started
    with os.fdopen(reader) as results:
        cpu_seconds = [float(line) for line in results]
    emit(
        {
            "cpu_count": os.cpu_count(),
            "affinity": affinity,
            "cgroup_cpu_limit": cpu_limit_of(os.getpid()),
            "worker_cpu_seconds": cpu_seconds,
            "wall_seconds": wall_s,
        }
    )


def orphans(count: int, linger_s: float) -> None:
    """Leave ``count`` orphans (children of a shell that exits at once), then wait without a SIGTERM handler."""
    subprocess.run(["sh", "-c", "/bin/true & " * count + "exit 0"], check=True, timeout=10)
    emit({"pid": os.getpid(), "orphans": count})
    time.sleep(linger_s)  # sleep-ok: the program's whole job is to wait for a signal, bounded by linger_s


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m lab.container.workload")
    programs = parser.add_subparsers(dest="program", required=True)
    programs.add_parser("inspect").add_argument("--hostname", required=True)
    programs.add_parser("overlay").add_argument("base", type=Path)
    for name in ("allocate", "burn"):
        program = programs.add_parser(name)
        program.add_argument("--join", action="append", default=[], help="a cgroup.procs file to write own PID to")
    programs.choices["allocate"].add_argument("--mib", type=int, required=True)
    programs.choices["burn"].add_argument("--workers", type=int, required=True)
    programs.choices["burn"].add_argument("--seconds", type=float, required=True)
    orphan_program = programs.add_parser("orphans")
    orphan_program.add_argument("--count", type=int, required=True)
    orphan_program.add_argument("--linger", type=float, required=True)
    arguments = parser.parse_args(argv)
    if arguments.program == "inspect":
        inspect(arguments.hostname)
    elif arguments.program == "overlay":
        overlay(arguments.base)
    elif arguments.program == "allocate":
        allocate(arguments.join, arguments.mib)
    elif arguments.program == "burn":
        burn(arguments.join, arguments.workers, arguments.seconds)
    else:
        orphans(arguments.count, arguments.linger)


if __name__ == "__main__":
    main(sys.argv[1:])
