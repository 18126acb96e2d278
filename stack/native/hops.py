"""Which hops of a native stack cross the fault proxy: none while healed, only the broken one while a fault is on.

Why: a Python proxy in front of every service made every request of the app cross a single-threaded process, and
the edge twice, so the stack measured the proxy as much as the app. Now the stack's clients (the app, its worker,
Nginx) connect to each service's real port. A fault verb (``slow``, ``cut``, a failover's address move) adds one
kernel rule to a table of this stack's own: an nftables ``nat output`` redirect of that service's port to its
proxy's port, matching only sockets of processes in this stack's cgroup (cgroup v2), so the proxy's own outbound
links, the tests' direct connections and every other stack on the machine are untouched. ``ss -K`` then drops the
clients' existing links to that port (they reconnect through the new path); ``heal`` removes the rule and drops the
links that went through the proxy, so they come back direct. With no rule left the table itself is deleted: a
healed stack registers no netfilter hook at all.

A stack that cannot do this (not root, no ``nft``/``ss``, no writable cgroup v2) keeps the old shape: its clients
always go through the proxy, and the verbs need nothing here. ``Layout.divert_on_demand`` records which shape a
stack was built with, so ``python -m stack fault`` from another process acts the same way. Rules and the cgroup are
named after the stack's folder: removed at ``down`` and by the reaper (stack/native/reaper.py), never anyone
else's. See notes/fault_tolerance.md, "Breaking things on purpose".
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")  # where nft resolves ``socket cgroupv2`` paths from
FAULT, MOVED = "fault", "moved"  # why a hop is diverted: a fault (heal ends it) or a failover (only down ends it)


def cgroup2_mount() -> Path | None:
    """Where the cgroup v2 hierarchy is mounted (``/sys/fs/cgroup`` itself, or ``…/unified`` on a hybrid host)."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            return Path(fields[1])
    return None


def diversion_possible() -> bool:
    """Root, ``nft`` and ``ss`` installed, and a cgroup v2 hierarchy we may write to."""
    mount = cgroup2_mount()
    return (
        os.geteuid() == 0
        and shutil.which("nft") is not None
        and shutil.which("ss") is not None
        and mount is not None
        and mount.is_relative_to(CGROUP_ROOT)
        and os.access(mount, os.W_OK)
    )


class HopRouting:
    """The kernel side of one stack's faults: its cgroup of clients and its nftables table of redirects."""

    def __init__(self, base: Path) -> None:
        self.base = base
        tag = re.sub(r"[^A-Za-z0-9]", "_", base.name)
        self.table = f"refstack_hops_{tag}"
        self.cgroup_name = f"refstack-clients-{tag}"
        self.state_path = base / "hops.json"

    @property
    def cgroup(self) -> Path:
        mount = cgroup2_mount()
        if mount is None:
            raise RuntimeError("no cgroup v2 hierarchy is mounted")
        return mount / self.cgroup_name

    def enrol(self, argv: list[str]) -> list[str]:
        """``argv`` run inside this stack's cgroup: a shell joins it, then execs the command (same PID), so every
        process and thread the command starts is a member before it opens a socket."""
        join = 'mkdir -p "$0" && echo $$ > "$0/cgroup.procs" && exec "$@"'
        return ["sh", "-c", join, str(self.cgroup), *argv]

    # -- verbs ------------------------------------------------------------------------------------------------
    def divert(self, port: int, to_port: int, why: str = FAULT, *, settle_s: float = 0.0) -> None:
        """From now on the clients' links to ``port`` go to ``to_port``; the links they hold are dropped. With
        ``settle_s``, wait (that long at most) until the clients have closed the dropped links: an event-driven
        client such as Nginx closes an idle keepalive link as soon as it sees the reset, and a request that arrived
        before it did would be sent on the dead link (a 502 with ``proxy_next_upstream off``)."""
        with self._state() as hops:
            hops.setdefault(str(port), {})[why] = to_port
            self._apply(hops)
        self._settle(self._drop_links(port), settle_s)

    def restore(self, port: int, why: str = FAULT) -> None:
        """End one reason for diverting ``port``; when none is left its links are dropped and come back direct."""
        with self._state() as hops:
            reasons = hops.get(str(port), {})
            if why not in reasons:
                return
            del reasons[why]
            if not reasons:
                del hops[str(port)]
            # Dropped while the redirect still translates them, so the resets reach the proxy's ends too; once more
            # after, for a link a client opened in between.
            self._drop_links(port)
            self._apply(hops)
        self._drop_links(port)

    def remove(self) -> None:
        """At ``down``: the table and the (by now empty) cgroup go; neither is shared with anything else."""
        subprocess.run(["nft", "delete", "table", "ip", self.table], capture_output=True, check=False)
        if cgroup2_mount() is not None:
            with contextlib.suppress(OSError):  # never created (a stack that diverts nothing), or already gone
                self.cgroup.rmdir()

    # -- the kernel --------------------------------------------------------------------------------------------
    def rules(self, hops: dict[str, dict[str, int]]) -> list[str]:
        """One redirect per diverted port; a fault's rule first, so a slowed hop that has also moved is slowed."""
        member = f'socket cgroupv2 level 1 "{self.cgroup.relative_to(CGROUP_ROOT)}"'
        ordered = [(port, reasons[why]) for why in (FAULT, MOVED) for port, reasons in hops.items() if why in reasons]
        return [f"{member} ip daddr 127.0.0.1 tcp dport {port} redirect to :{to}" for port, to in ordered]

    def _apply(self, hops: dict[str, dict[str, int]]) -> None:
        """Replace the whole table in one transaction (``nft -f``), or delete it when no hop is diverted."""
        script = [f"table ip {self.table} {{}}", f"delete table ip {self.table}"]
        rules = self.rules(hops)
        if rules:
            script += [
                f"table ip {self.table} {{",
                "  chain clients {",
                "    type nat hook output priority -100; policy accept;",
                *(f"    {rule}" for rule in rules),
                "  }",
                "}",
            ]
        done = subprocess.run(["nft", "-f", "-"], input="\n".join(script) + "\n", capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"nft refused the hop rules of {self.base}: {done.stderr.strip()}")

    def _drop_links(self, port: int) -> set[str]:
        """``ss -K``: end this stack's clients' TCP links to ``port`` (both the direct and the diverted ones); the
        socket inodes it ended."""
        cgroup = f"/{self.cgroup_name}"
        ended = subprocess.run(
            ["ss", "-K", "-tne", "cgroup", cgroup, "dst", "127.0.0.1", "dport", "=", f":{port}"],
            capture_output=True,
            text=True,
            check=False,
        )
        return set(re.findall(r"\bino:(\d+)", ended.stdout))

    def _settle(self, inodes: set[str], settle_s: float) -> None:
        deadline = time.monotonic() + settle_s
        while inodes and time.monotonic() < deadline and self._still_open(inodes):
            time.sleep(0.02)  # sleep-ok: the poll interval of a deadline-bound wait

    def _still_open(self, inodes: set[str]) -> bool:
        """Whether a process of the stack's cgroup still holds one of these sockets."""
        wanted = {f"socket:[{inode}]" for inode in inodes}
        for pid in (self.cgroup / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):  # a process or fd gone meanwhile
                for fd in Path(f"/proc/{pid}/fd").iterdir():
                    with contextlib.suppress(OSError):
                        if os.readlink(fd) in wanted:
                            return True
        return False

    @contextlib.contextmanager
    def _state(self) -> Iterator[dict[str, dict[str, int]]]:
        """The diverted hops, read and written under a lock: the CLI and a test may act on one stack at once."""
        lock_path = self.base / "hops.lock"
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            hops: dict[str, dict[str, int]] = (
                json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
            )
            yield hops
            self.state_path.write_text(json.dumps(hops))
