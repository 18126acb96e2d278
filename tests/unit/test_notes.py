"""The notes stay tied to the code: links resolve, each note can be proved, each module names a note that exists.

See notes/README.md.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTES = sorted((REPO / "notes").glob("*.md"))
LINK = re.compile(r"\]\(((?:\.\./)?[^)#:\s]+)(?:#[^)]*)?\)")
CODE_DIRS = ("app", "stack", "simulators")


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
