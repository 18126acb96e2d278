"""``ProblemTable``: one resource's service errors and the problem each becomes, in one place.

Why a table per resource instead of ``except`` blocks in each route: a route reads "call the use case, respond",
and what a ``HoldNotBookableError`` or a ``PaymentDeclinedError`` means to a client (status, problem kind, detail,
``Retry-After``) is written once, where every route of the resource uses it. Services own their errors; no route
imports an adapter's exceptions. See notes/fastapi.md, "Problem details".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from app.api.problems import Problem

ToProblem = Callable[[Any], Problem]


class ProblemTable:
    def __init__(self, entries: Mapping[type[Exception], ToProblem]) -> None:
        self._entries = dict(entries)

    def __or__(self, other: ProblemTable) -> ProblemTable:
        return ProblemTable({**self._entries, **other._entries})

    @contextmanager
    def translating(self) -> Iterator[None]:
        """Inside the block, a listed service error (or a subclass) leaves as its problem."""
        try:
            yield
        except Exception as error:
            to_problem = next((make for kind, make in self._entries.items() if isinstance(error, kind)), None)
            if to_problem is None:
                raise
            raise to_problem(error) from None
