"""Step 1: a process in new PID, mount, UTS, IPC and network namespaces, beside what the host sees.

A container is first of all a process whose view of the machine is narrowed: in its PID namespace it is PID 1 and
sees only its own processes (with a /proc mounted for that namespace), its UTS namespace has its own hostname, its
network namespace has only a loopback device (down until someone brings it up, and no route out), and every
namespace is a different kernel object, named by the inode behind /proc/<pid>/ns/<kind>. See notes/docker.md.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from typing import Any

from lab.container.namespaced_process import NamespacedProcess, workload
from lab.table import Table

HOSTNAME = "lab-container"
KINDS = ("pid", "mnt", "uts", "ipc", "net")


@dataclass(frozen=True)
class NamespacesSeen:
    host_pid_of_pid_1: int
    host: dict[str, Any]
    container: dict[str, Any]

    def table(self) -> Table:
        host, container = self.host, self.container
        rows: list[tuple[str | int, ...]] = [
            ("PID of the process", host["pid"], f"{container['pid']} (host PID {self.host_pid_of_pid_1})"),
            ("processes it can see in /proc", len(host["processes"]), len(container["processes"])),
            ("hostname", host["hostname"], container["hostname"]),
            ("network interfaces", ", ".join(host["interfaces"]), ", ".join(container["interfaces"])),
            *((f"{kind} namespace", host["namespaces"][kind], container["namespaces"][kind]) for kind in KINDS),
        ]
        return Table("namespaces: one process, five new namespaces (unshare)", ("", "host", "container"), rows)


def host_view() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "hostname": socket.gethostname(),
        "interfaces": [name for _, name in socket.if_nameindex()],
        "processes": [int(p) for p in os.listdir("/proc") if p.isdigit()],
        "namespaces": {kind: os.readlink(f"/proc/self/ns/{kind}") for kind in KINDS},
    }


def run() -> NamespacesSeen:
    with NamespacedProcess(workload("inspect", "--hostname", HOSTNAME)) as pid_1:
        container = json.loads(pid_1.read_line(timeout_s=10))
        return NamespacesSeen(pid_1.host_pid, host_view(), container)
