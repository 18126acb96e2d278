"""Every statement an engine sends, as the driver receives it: SQL text (``$1`` placeholders) and parameters.

Why a ``before_cursor_execute`` hook on the engine's ``sync_engine``: it fires once per statement that reaches
the database, whatever built it (ORM, Core, lazy loads), so counting its calls exposes N+1 queries, and the
recorded text is exactly what the app runs, ready to be EXPLAINed with the same parameters. See
notes/postgres.md, "Plans, indexes and timeouts".
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass(frozen=True)
class Statement:
    sql: str
    parameters: Sequence[Any]


@contextmanager
def recorded_statements(engine: AsyncEngine) -> Iterator[list[Statement]]:
    """The statements ``engine`` executes inside the ``with`` block, in order."""
    statements: list[Statement] = []

    def record(conn: Any, cursor: Any, sql: str, parameters: Any, context: Any, executemany: bool) -> None:
        statements.append(Statement(sql, tuple(parameters or ())))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
