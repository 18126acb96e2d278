"""The `pytest` commands that the notes give as proof, and a runner that asks pytest which tests each one selects.

A note's "Prove it" line that selects nothing proves nothing, so tests/unit/test_notes.py runs this module as
``python -m tests.note_commands``: pytest collects the whole suite once (never runs it), and each command's
selection is applied to that collection, its ``-k``/``-m`` expressions by pytest's own deselection code, its
paths and node ids as pytest reads them (a file or folder selects what is under it, ``file::test`` that test and
its parameters). One collection instead of one per command keeps the check to seconds. See notes/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import re
import shlex
import sys
from dataclasses import dataclass, field

import pytest
from _pytest.mark import deselect_by_keyword, deselect_by_mark

FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
LAUNCHER = r"(?:uv run\s+|(?:\.venv/bin/)?python3? -m\s+)?"
COMMAND = re.compile(rf"^\s*{LAUNCHER}pytest\b(.*)$", re.MULTILINE)
INLINE_COMMAND = re.compile(rf"`{LAUNCHER}pytest\b([^`]*)`")


def pytest_commands(note_text: str) -> list[list[str]]:
    """The arguments of every `pytest` command in a note: lines of its code blocks, and inline code elsewhere."""
    blocks = FENCE.findall(note_text)
    in_blocks = [arguments for block in blocks for arguments in COMMAND.findall(block)]
    inline = INLINE_COMMAND.findall(FENCE.sub("", note_text))
    return [shlex.split(arguments, comments=True) for arguments in [*in_blocks, *inline]]


def command_parser() -> argparse.ArgumentParser:
    """The options a note may use; any other option is an error rather than something silently ignored."""
    parser = argparse.ArgumentParser(prog="pytest", exit_on_error=False, add_help=False)
    parser.add_argument("-k", dest="keyword", default="")
    parser.add_argument("-m", dest="markexpr", default="")
    for flag in ("-q", "-s", "-v", "-x"):
        parser.add_argument(flag, action="count")
    parser.add_argument("paths", nargs="*")
    return parser


def under(nodeid: str, path: str) -> bool:
    """Whether a path argument (file, folder or node id, relative to the repository) selects this test."""
    path = path.rstrip("/")
    return nodeid == path or nodeid.startswith((f"{path}/", f"{path}::", f"{path}["))


@dataclass(eq=False)
class Selections:
    """A pytest plugin: after the one collection, counts what each command would select."""

    commands: list[list[str]]
    results: list[dict[str, object]] = field(default_factory=list)
    collection_errors: list[str] = field(default_factory=list)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_errors.append(report.nodeid)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        self.results = [self.select(arguments, config, items) for arguments in self.commands]

    def select(self, arguments: list[str], config: pytest.Config, items: list[pytest.Item]) -> dict[str, object]:
        try:
            command, unknown = command_parser().parse_known_args(arguments)
        except argparse.ArgumentError as error:
            return {"selected": 0, "problem": str(error)}
        if unknown:
            return {"selected": 0, "problem": f"options this check does not know: {unknown}"}
        paths = command.paths or ["tests"]
        selected = [item for item in items if any(under(item.nodeid, path) for path in paths)]
        option = copy.copy(config.option)
        config.option.keyword, config.option.markexpr = command.keyword, command.markexpr
        try:
            deselect_by_keyword(selected, config)
            deselect_by_mark(selected, config)
        except pytest.UsageError as error:
            return {"selected": 0, "problem": str(error)}
        finally:
            config.option = option
        errors = [error for error in self.collection_errors if any(under(error, path) for path in paths)]
        return {"selected": len(selected), "collection_errors": errors}


def main() -> None:
    """Reads a JSON list of argument lists on stdin; writes one result per list: tests selected, modules broken."""
    selections = Selections(json.load(sys.stdin))
    options = ["--collect-only", "-q", "-p", "no:cacheprovider", "--continue-on-collection-errors", "tests"]
    with contextlib.redirect_stdout(io.StringIO()):
        pytest.main(options, plugins=[selections])
    json.dump(selections.results, sys.stdout)


if __name__ == "__main__":
    main()
