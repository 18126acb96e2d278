"""One plain-text table, the shape every lab prints its numbers in (the CPython lab, notes/python.md, and the
container lab, notes/docker.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Cell = str | int | float


def cell_text(value: Cell) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Table:
    """A title, a header row and rows; the first column is left-aligned, the others right-aligned."""

    title: str
    headers: tuple[str, ...]
    rows: Sequence[tuple[Cell, ...]]

    def render(self) -> str:
        texts = [self.headers, *(tuple(cell_text(c) for c in row) for row in self.rows)]
        widths = [max(len(row[i]) for row in texts) for i in range(len(self.headers))]
        lines = [self.title]
        for row in texts:
            first, *rest = row
            cells = [first.ljust(widths[0]), *(text.rjust(width) for text, width in zip(rest, widths[1:], strict=True))]
            lines.append("  ".join(cells).rstrip())
        return "\n".join(lines)
