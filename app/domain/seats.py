"""The seat state machine: available → held → sold, and held → available when a hold ends unsold.

Why spell it out: every write to a seat is one of these three moves, and nothing else (sold seats never come back,
an available seat is never sold without a hold). The database guards the same rule: the hold statement only
claims rows ``WHERE status = 'available'``, and a check constraint ties ``status = 'available'`` to
``hold_id IS NULL``. See notes/postgres.md, "Contention".
"""

from __future__ import annotations

from enum import StrEnum


class SeatStatus(StrEnum):
    AVAILABLE = "available"
    HELD = "held"
    SOLD = "sold"


MOVES: frozenset[tuple[SeatStatus, SeatStatus]] = frozenset(
    {
        (SeatStatus.AVAILABLE, SeatStatus.HELD),  # a hold claims it
        (SeatStatus.HELD, SeatStatus.SOLD),  # the hold's booking is paid
        (SeatStatus.HELD, SeatStatus.AVAILABLE),  # the hold expired or was released
    }
)


class SeatMoveError(ValueError):
    """A move the state machine forbids, e.g. sold → available."""


def can_move(current: SeatStatus, target: SeatStatus) -> bool:
    return (current, target) in MOVES


def move(current: SeatStatus, target: SeatStatus) -> SeatStatus:
    """``target`` if the seat may go there from ``current``; raises ``SeatMoveError`` otherwise."""
    if not can_move(current, target):
        raise SeatMoveError(f"a seat cannot go from {current} to {target}")
    return target
