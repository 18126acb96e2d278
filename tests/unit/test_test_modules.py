"""No test module imports another test module: shared fixtures live in plugins listed in tests/conftest.py
(``tests/fix_*.py``) and shared helpers in plain modules under tests/, so running one test file never depends on
what another happens to define. See notes/fault_tolerance.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_test_module_imports_another() -> None:
    offenders = []
    for module in sorted(TESTS.rglob("test_*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[-1].startswith("test_"):
                offenders.append(f"{module.relative_to(TESTS)}: from {node.module} import …")
    assert offenders == []
