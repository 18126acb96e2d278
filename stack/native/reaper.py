"""Clean up after a stack whose owner died without tearing down (SIGKILLed test run, closed terminal).

Why not a broad ``pkill postgres``: the machine runs system-wide PostgreSQL, Redis and RabbitMQ that are not ours.
We end only processes recorded in an orphaned stack's state file whose PID *and* start time still match.
See notes/docker.md.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from stack.native.process import start_time
from stack.native.stack import NativeStack


def reap_orphans(report: Callable[[str], None] = print) -> list[Path]:
    """Tear down every native stack under the temp folder whose recorded owner is gone; return their folders."""
    reaped: list[Path] = []
    for state_file in Path(tempfile.gettempdir()).glob("refstack-*/state.json"):
        try:
            owner = json.loads(state_file.read_text())["owner"]
        except (OSError, ValueError, KeyError):
            continue
        if start_time(owner[0]) == owner[1]:
            continue
        report(f"reaping an orphaned stack in {state_file.parent} (owner PID {owner[0]} is gone)")
        NativeStack.from_state(state_file).down()
        reaped.append(state_file.parent)
    return reaped
