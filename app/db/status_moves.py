"""Every status move of a hold or a seat is one conditional ``UPDATE``, and this module builds all of them.

Why one builder over the transition tables (``app.domain.holds.MOVES``, ``app.domain.seats.MOVES``): the rule "a
hold goes ``active → paying`` only" lives in the table, and the statement that performs the move is derived from
it — ``UPDATE hold SET status = <target> WHERE status IN (<allowed sources>) AND …``. A move the table forbids
cannot be built (``ForbiddenMove`` at the call site, before any SQL runs), and a row in a state the move does not
start from is simply not matched: the statement changes zero rows, which is how every caller learns that somebody
else moved the row first (the sweeper, a concurrent retry, the reconciler). Callers add their own predicates
(which hold, whose, unexpired, same payment key), the other columns to set, and ``RETURNING``.

``synchronize_session=False``: these are bulk statements; no ORM object in the session needs to be kept in step.
See notes/postgres.md, "Contention" (and tests/integration/test_status_moves.py, which walks every pair of states
against the real primary).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TypeVar

from sqlalchemy import Update, update

from app.db.models import Hold, Seat
from app.domain import holds, seats
from app.domain.holds import HoldStatus
from app.domain.seats import SeatStatus

S = TypeVar("S", HoldStatus, SeatStatus)
BULK = {"synchronize_session": False}  # bulk UPDATE/DELETE: nothing in the session to keep in step


class ForbiddenMove(ValueError):
    """A status move the transition table does not list; raised while building, never sent to the database."""


def _sources(source: S | Collection[S] | None, target: S, allowed: frozenset[S]) -> list[S]:
    chosen = allowed if source is None else {source} if isinstance(source, str) else set(source)
    forbidden = sorted(chosen - allowed)
    if forbidden or not chosen:
        raise ForbiddenMove(f"no move from {forbidden or 'nowhere'} to {target}")
    return sorted(chosen)


def move_holds(target: HoldStatus, source: HoldStatus | Collection[HoldStatus] | None = None) -> Update:
    """``UPDATE hold SET status = target WHERE status IN (source)``; ``source`` defaults to every allowed one."""
    allowed = _sources(source, target, holds.sources_of(target))
    return update(Hold).where(Hold.status.in_(allowed)).values(status=target).execution_options(**BULK)


def move_seats(target: SeatStatus, source: SeatStatus | Collection[SeatStatus] | None = None) -> Update:
    """``UPDATE seat SET status = target WHERE status IN (source)``; the caller sets ``hold_id`` to match
    (a check constraint ties ``available`` to no hold)."""
    allowed = _sources(source, target, seats.sources_of(target))
    return update(Seat).where(Seat.status.in_(allowed)).values(status=target).execution_options(**BULK)
