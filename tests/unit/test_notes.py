"""The notes stay tied to the code: links resolve, each note can be proved, each module names a note that exists.

A note's `pytest` command is proof only if it selects a test, so every one of them is collected (never run) in
one subprocess, see tests/note_commands.py. See notes/README.md.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.note_commands import pytest_commands

REPO = Path(__file__).resolve().parents[2]
NOTES = sorted((REPO / "notes").glob("*.md"))
LINK = re.compile(r"\]\(((?:\.\./)?[^)#:\s]+)(?:#[^)]*)?\)")
CODE_DIRS = ("app", "stack", "simulators", "lab")
# Controls for the selection check itself: nothing matches, an option the check does not know, exactly one test.
SELECTS_NOTHING = ("-k", "no_test_is_named_like_this")
UNKNOWN_OPTION = ("--last-failed", "tests/unit")
SELECTS_ONE = ("-k", "test_the_selection_check_tells_nothing_from_something", "tests/unit/test_notes.py")


@pytest.mark.parametrize("note", NOTES, ids=lambda p: p.name)
def test_every_link_in_a_note_points_at_a_file_that_exists(note: Path) -> None:
    missing = [target for target in LINK.findall(note.read_text()) if not (note.parent / target).exists()]
    assert missing == []


@pytest.mark.parametrize("note", [n for n in NOTES if n.name != "README.md"], ids=lambda p: p.name)
def test_every_note_has_code_proof_and_questions(note: Path) -> None:
    headings = [line.lower() for line in note.read_text().splitlines() if line.startswith("## ")]
    for section in ("## in the code", "## prove it", "## interview questions"):
        assert any(h.startswith(section) for h in headings), f"{note.name} lacks {section!r}"


def python_modules() -> list[Path]:
    return sorted(p for d in CODE_DIRS for p in (REPO / d).rglob("*.py") if p.stat().st_size > 0)


@pytest.mark.parametrize("module", python_modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_module_docstring_names_an_existing_note(module: Path) -> None:
    docstring = ast.get_docstring(ast.parse(module.read_text())) or ""
    named = re.findall(r"notes/([a-z_]+)\.md|notes/(README)\.md", docstring)
    assert named, f"{module.relative_to(REPO)}: docstring names no note"
    for note in ("".join(parts) for parts in named):
        assert (REPO / "notes" / f"{note}.md").exists(), f"{module.relative_to(REPO)} names missing notes/{note}.md"


@pytest.fixture(scope="module")
def selections() -> dict[tuple[str, ...], dict[str, object]]:
    """What each note's `pytest` command selects, from one collection of the suite in a subprocess."""
    in_notes = [tuple(arguments) for note in NOTES for arguments in pytest_commands(note.read_text())]
    commands = list(dict.fromkeys([*in_notes, SELECTS_NOTHING, UNKNOWN_OPTION, SELECTS_ONE]))
    run = subprocess.run(
        [sys.executable, "-m", "tests.note_commands"],
        input=json.dumps(commands),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=100,
        check=True,
    )
    return dict(zip(commands, json.loads(run.stdout), strict=True))


def test_the_selection_check_tells_nothing_from_something(selections: dict[tuple[str, ...], dict[str, object]]) -> None:
    assert selections[SELECTS_NOTHING]["selected"] == 0
    assert selections[UNKNOWN_OPTION]["selected"] == 0
    assert "--last-failed" in str(selections[UNKNOWN_OPTION]["problem"])
    assert selections[SELECTS_ONE]["selected"] == 1


@pytest.mark.parametrize("note", NOTES, ids=lambda p: p.name)
def test_every_pytest_command_in_a_note_selects_a_test(
    note: Path, selections: dict[tuple[str, ...], dict[str, object]]
) -> None:
    commands = [tuple(arguments) for arguments in pytest_commands(note.read_text())]
    selecting_nothing = {f"pytest {shlex.join(c)}": selections[c] for c in commands if not selections[c]["selected"]}
    assert selecting_nothing == {}
