"""A container by hand, as root, with no container runtime: ``python -m lab.container [step]``. See notes/docker.md.

One module per step (namespaces, overlay, memory_limit, cpu_quota, pid_one); each has a ``run()`` that does the
step, cleans up what it made even when it fails, raises KernelRefusedError with the kernel's reason when refused,
and returns what it measured with a ``table()`` to print.
"""
