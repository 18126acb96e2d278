"""``python -m lab.python [topic]``: print each CPython footgun's numbers as tables. See notes/python.md."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from lab.python import collector, descriptors, gil, language_traps, memory, mro, task_references
from lab.table import Table

TOPICS: dict[str, Callable[[], list[Table]]] = {
    "gil": gil.report,
    "collector": collector.report,
    "memory": memory.report,
    "mro": mro.report,
    "descriptors": descriptors.report,
    "traps": language_traps.report,
    "tasks": task_references.report,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lab.python", description="CPython's footguns, measured.")
    parser.add_argument("topic", nargs="?", choices=[*TOPICS, "all"], default="all")
    topic = parser.parse_args(argv).topic
    for name in TOPICS if topic == "all" else [topic]:
        for table in TOPICS[name]():
            print(f"{table.render()}\n")


if __name__ == "__main__":
    main()
