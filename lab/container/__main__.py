"""`python -m lab.container [step ...]`: run the steps of a container by hand and print each one's table.

No step named means all of them, in the order a container is built: namespaces, overlay, memory, cpu, pid1.
A step the kernel refuses prints the kernel's reason and the command exits 2 after the other steps ran.
See notes/docker.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from lab.container import cpu_quota, memory_limit, namespaces, overlay, pid_one
from lab.container.refusal import KernelRefusedError
from lab.table import Table

STEPS: dict[str, Callable[[], Table]] = {
    "namespaces": lambda: namespaces.run().table(),
    "overlay": lambda: overlay.run().table(),
    "memory": lambda: memory_limit.run().table(),
    "cpu": lambda: cpu_quota.run().table(),
    "pid1": lambda: pid_one.run().table(),
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.container", description=__doc__.splitlines()[0])
    parser.add_argument("steps", nargs="*", metavar="step", help=f"any of {', '.join(STEPS)}; all when none")
    chosen = parser.parse_args(argv).steps or list(STEPS)
    if unknown := [step for step in chosen if step not in STEPS]:
        parser.error(f"unknown step {', '.join(unknown)} (choose from {', '.join(STEPS)})")
    refused = False
    for step in chosen:
        try:
            print(STEPS[step]().render(), end="\n\n", flush=True)
        except KernelRefusedError as reason:
            print(f"{step}: refused by the kernel: {reason}\n", flush=True)
            refused = True
    return 2 if refused else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
