"""Four traps of the language itself, each beside its fix: a mutable default argument, closures that bind late,
``is`` where ``==`` was meant, and ``return`` in ``finally``.

Why they survive review: each reads as correct and passes the first test. A default list is built once, when
``def`` runs, and shared by every call; a closure looks a name up when it is called, not when it is made; ``is``
compares identity, which caches make look like equality for small values; a ``return`` (or ``break``,
``continue``) in ``finally`` replaces the exception in flight, which then vanishes. See notes/python.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from lab.table import Table


def add_seat_buggy(seat: int, seats: list[int] = []) -> list[int]:  # noqa: B006 (the trap shown)
    seats.append(seat)
    return seats


def add_seat(seat: int, seats: list[int] | None = None) -> list[int]:
    seats = [] if seats is None else seats
    seats.append(seat)
    return seats


def two_separate_calls(add: Callable[[int], list[int]]) -> tuple[list[int], list[int]]:
    return list(add(1)), list(add(2))


def late_binding_closures(count: int = 3) -> list[int]:
    callbacks: list[Callable[[], int]] = [lambda: row for row in range(count)]  # noqa: B023 (the trap shown)
    return [callback() for callback in callbacks]


def returning(row: int) -> Callable[[], int]:
    return lambda: row


def early_binding_closures(count: int = 3) -> list[int]:
    """The fix: each call of ``returning`` is a new scope holding its own ``row`` (``functools.partial`` and the
    ``lambda row=row: row`` default argument bind early too)."""
    callbacks = [returning(row) for row in range(count)]
    return [callback() for callback in callbacks]


class EqualsEverything:
    """A class whose ``__eq__`` says yes to everything, as some ORM column objects and mocks do."""

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return 0


def identity_vs_equality() -> list[tuple[str, bool]]:
    nan = math.nan
    anything = EqualsEverything()
    return [
        ("[1] == [1]", [1] == [1]),
        ("[1] is [1]", [1] is [1]),  # noqa: F632 (identity of two new lists, shown on purpose)
        ("nan == nan", nan == nan),
        ("nan in [nan] (containment tries `is` first)", nan in [nan]),
        ("EqualsEverything() == None", anything == None),  # noqa: E711 (why PEP 8 says `is None`)
        ("EqualsEverything() is None", anything is None),
    ]


def swallowed_by_finally() -> str:
    try:
        raise ValueError("the payment failed")
    finally:
        return "looks fine"  # noqa: B012 (the trap shown)


def outcome(operation: Callable[[], str]) -> str:
    try:
        return f"returned {operation()!r}"
    except ValueError as error:
        return f"raised ValueError({str(error)!r})"


def cleanup_then_raise() -> str:
    """The fix: ``finally`` only cleans up; the result comes from the ``try`` body, so the exception propagates."""
    cleaned = []
    try:
        raise ValueError("the payment failed")
    finally:
        cleaned.append("connection released")


def report() -> list[Table]:
    return [
        Table(
            "language traps, each beside its fix",
            ("what", "result"),
            [
                ("add_seat_buggy(1), then add_seat_buggy(2)", str(two_separate_calls(add_seat_buggy))),
                ("add_seat(1), then add_seat(2) (None default)", str(two_separate_calls(add_seat))),
                ("[lambda: row for row in range(3)], called", str(late_binding_closures())),
                ("[returning(row) for row in range(3)], called", str(early_binding_closures())),
                *((expression, str(value)) for expression, value in identity_vs_equality()),
                ("raise in try, return in finally", outcome(swallowed_by_finally)),
                ("raise in try, cleanup only in finally", outcome(cleanup_then_raise)),
            ],
        )
    ]
