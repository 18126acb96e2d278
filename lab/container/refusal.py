"""The one error a container lab raises when the kernel says no, so a test can skip with the kernel's own reason.

Namespaces, cgroups and mounts need root and a kernel built and configured for them; inside another container, or
with a locked-down seccomp profile, `unshare`, `mkdir` in a cgroup hierarchy or `mount -t overlay` fail with
EPERM and friends. That is a fact about the machine, not a failing lab. See notes/docker.md.
"""

from __future__ import annotations

import errno
import os


class KernelRefusedError(Exception):
    """The kernel (or a tool speaking for it) refused what the lab asked; the message is its reason."""

    @classmethod
    def from_os_error(cls, action: str, error: OSError) -> KernelRefusedError:
        code = errno.errorcode.get(error.errno or 0, "?")
        return cls(f"{action}: {code} {os.strerror(error.errno or 0)}")
