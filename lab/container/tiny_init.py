"""A tiny init for PID 1, the two jobs of tini (`docker run --init`): forward signals to the child, reap every orphan.

The kernel never applies a default action to the init process of a PID namespace, so an application that is
PID 1 and has no SIGTERM handler ignores `docker stop` until SIGKILL; and every orphan in the namespace is
re-parented to PID 1, which must wait() for it or it stays a zombie. This init blocks the signals it forwards and
SIGCHLD, starts the command with a clean signal mask (so the command, as PID 2, dies of SIGTERM by default), and
then handles one signal at a time with sigwaitinfo: a forwarded signal goes to the command, SIGCHLD reaps
everything that has exited. It ends when the command ends, with the command's exit code (128 + the signal for a
signal), and prints one JSON line saying how many orphans it reaped. Its loop lives exactly as long as the command,
as an init's must; the lab bounds the command. Run: `python -m lab.container.tiny_init -- command ...`.
See notes/docker.md.
"""

from __future__ import annotations

import json
import os
import signal
import sys

FORWARDED = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2}


def reap(child: int) -> tuple[int, int | None]:
    """Wait for every process that has exited: (orphans reaped, the child's exit code if the child was one)."""
    orphans, child_code = 0, None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return orphans, child_code
        if pid == 0:
            return orphans, child_code
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            child_code = 128 - code if code < 0 else code
        else:
            orphans += 1


def main(command: list[str]) -> int:
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED | {signal.SIGCHLD})
    child = os.posix_spawnp(command[0], command, os.environ, setsigmask=(), setsigdef=FORWARDED)
    reaped = 0
    while True:
        received = signal.sigwaitinfo(FORWARDED | {signal.SIGCHLD})
        if received.si_signo != signal.SIGCHLD:
            os.kill(child, received.si_signo)
            continue
        orphans, child_code = reap(child)
        reaped += orphans
        if child_code is not None:
            print(json.dumps({"init_reaped_orphans": reaped, "child_exit_code": child_code}), flush=True)
            return child_code


if __name__ == "__main__":
    arguments = sys.argv[1:]
    sys.exit(main(arguments[1:] if arguments[:1] == ["--"] else arguments))
