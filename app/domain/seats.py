"""The seat state machine: available → held → sold, and held → available when a hold ends unsold.

Why spell it out: every write to a seat is one of these three moves, and nothing else (sold seats never come back,
an available seat is never sold without a hold). Every seat ``UPDATE`` that changes a status is built from ``MOVES``
by app/db/status_moves.py, so the table is what the product runs; the database guards the same rule besides: a
check constraint ties ``status = 'available'`` to ``hold_id IS NULL``. See notes/postgres.md, "Contention".
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


def can_move(current: SeatStatus, target: SeatStatus) -> bool:
    return (current, target) in MOVES


def sources_of(target: SeatStatus) -> frozenset[SeatStatus]:
    """Every state a seat may reach ``target`` from (empty: nothing moves there)."""
    return frozenset(source for source, to in MOVES if to == target)
