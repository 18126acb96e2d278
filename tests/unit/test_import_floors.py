"""The app's packages import downwards only, read from the source (no import is run).

The floors, top to bottom: (main, worker) → api → services → (messaging, search, payments) → resilience → (db,
cache, security) → (domain, settings). A package may import from the floors below its own, never from its own floor's
neighbours or from above; packages on no floor (observability, background, ...) are not judged here. This is what
keeps, say, the SERIALIZABLE retry in app/resilience rather than app/db. See notes/README.md, "Layers".
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"
FLOORS = (
    ("main", "worker"),  # the two processes: the HTTP app and the consumer worker
    ("api",),
    ("services",),
    ("messaging", "search", "payments"),
    ("resilience",),
    ("db", "cache", "security"),
    ("domain", "settings"),
)
FLOOR_OF = {package: floor for floor, packages in enumerate(FLOORS) for package in packages}


def top_package(module: Path) -> str:
    """``app/db/errors.py`` → ``db``; ``app/main.py`` → ``main``."""
    return module.relative_to(APP).parts[0].removesuffix(".py")


def imported_packages(source: str, package: Sequence[str]) -> set[str]:
    """The top-level ``app`` packages that ``source``, a module of ``package``, imports; relative imports resolved."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            targets = [base + (node.module.split(".") if node.module else [alias.name]) for alias in node.names]
        else:
            continue
        found |= {target[1] for target in targets if len(target) > 1 and target[0] == "app"}
    return found


def upward_imports(importer: str, imported: set[str]) -> list[str]:
    """The packages ``importer`` may not import: on its own floor or above."""
    if importer not in FLOOR_OF:
        return []
    return sorted(p for p in imported if p != importer and p in FLOOR_OF and FLOOR_OF[p] <= FLOOR_OF[importer])


@pytest.mark.parametrize("module", sorted(APP.rglob("*.py")), ids=lambda p: str(p.relative_to(APP.parent)))
def test_no_package_imports_its_own_floor_or_one_above(module: Path) -> None:
    package = ["app", *module.relative_to(APP).parent.parts]
    assert upward_imports(top_package(module), imported_packages(module.read_text(), package)) == []


def test_the_check_sees_an_upward_import_absolute_or_relative() -> None:
    source = "from app.resilience.retry import full_jitter_retrying\nfrom ..domain import holds\nfrom . import errors\n"
    imported = imported_packages(source, ["app", "db"])
    assert imported == {"resilience", "domain", "db"}
    assert upward_imports("db", imported) == ["resilience"]
    assert upward_imports("db", {"cache"}) == ["cache"]  # a neighbour on the same floor
