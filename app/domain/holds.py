"""Hold rules: what a valid seat request is, when a hold expires, and which hold states may follow which.

Why the transition table is the one source: every conditional ``UPDATE`` that moves a hold's status is built from
``MOVES`` by app/db/status_moves.py, which refuses a move the table does not list; no status move is written by
hand anywhere else.

Why pure: the request rule (1..max distinct seats, in one canonical order) and the expiry rule are the parts of
"place a hold" that need no database, so they are tested without one. The canonical order (sorted ids) is the
order the hold statement locks rows in, which is what keeps overlapping multi-seat holds from deadlocking
(notes/postgres.md, "Contention"). Only ``active`` holds are ever swept: ``paying`` means a charge is in flight.
The per-account quota (``check_hold_quota``) is pure too; counting under a lock is the service's job
(notes/security.md, "Resource caps per user").
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum


class HoldStatus(StrEnum):
    ACTIVE = "active"  # seats held, waiting for a booking
    PAYING = "paying"  # a booking is charging the provider; the sweeper must not touch it
    BOOKED = "booked"  # paid; its seats are sold
    EXPIRED = "expired"  # the sweeper released it after expires_at
    RELEASED = "released"  # its owner let it go


MOVES: frozenset[tuple[HoldStatus, HoldStatus]] = frozenset(
    {
        (HoldStatus.ACTIVE, HoldStatus.PAYING),
        (HoldStatus.ACTIVE, HoldStatus.EXPIRED),
        (HoldStatus.ACTIVE, HoldStatus.RELEASED),
        (HoldStatus.PAYING, HoldStatus.BOOKED),
        (HoldStatus.PAYING, HoldStatus.ACTIVE),  # the charge did not happen; the user may retry while it lasts
        (HoldStatus.PAYING, HoldStatus.PAYING),  # a retry with the same card after an unknown outcome re-claims it
    }
)
SWEEPABLE = frozenset({HoldStatus.ACTIVE})
HOLDING = frozenset({HoldStatus.ACTIVE, HoldStatus.PAYING})  # states whose seats are still tied up


class SeatRequestError(ValueError):
    """A seat request that can never be valid, whatever the seats' state (empty, duplicated, too many)."""


def seat_request(seat_ids: Sequence[uuid.UUID], *, max_seats: int) -> tuple[uuid.UUID, ...]:
    """The requested seats in canonical (sorted) order; 1..``max_seats`` distinct ids or ``SeatRequestError``."""
    if not seat_ids:
        raise SeatRequestError("ask for at least one seat")
    if len(seat_ids) > max_seats:
        raise SeatRequestError(f"a hold takes at most {max_seats} seats, got {len(seat_ids)}")
    distinct = frozenset(seat_ids)
    if len(distinct) != len(seat_ids):
        raise SeatRequestError("each seat may appear only once")
    return tuple(sorted(distinct))


class HoldLimitError(Exception):
    """The user already holds as many holds as one account may (API6: no single account corners an event)."""

    def __init__(self, active: int, limit: int) -> None:
        super().__init__(f"{active} active hold(s); an account may have at most {limit}")
        self.active = active
        self.limit = limit


def check_hold_quota(active: int, *, limit: int) -> None:
    """Allow one more hold while the user's ``active`` (holding, unexpired) holds are below ``limit``."""
    if limit < 1:
        raise ValueError(f"the hold limit is at least one, got {limit}")
    if active >= limit:
        raise HoldLimitError(active, limit)


def expires_at(now: datetime, ttl_s: int) -> datetime:
    """When a hold placed at ``now`` stops holding; ``now`` must carry a timezone."""
    if now.tzinfo is None:
        raise ValueError("hold times are timezone-aware")
    if ttl_s < 1:
        raise ValueError(f"a hold lasts at least one second, got {ttl_s}")
    return now + timedelta(seconds=ttl_s)


def can_move(current: HoldStatus, target: HoldStatus) -> bool:
    return (current, target) in MOVES


def sources_of(target: HoldStatus) -> frozenset[HoldStatus]:
    """Every state a hold may reach ``target`` from (empty: nothing moves there)."""
    return frozenset(source for source, to in MOVES if to == target)
