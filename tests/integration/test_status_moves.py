"""Every pair of states, walked against the real primary: the statement that moves a hold (or a seat) to a target
changes exactly one row when the transition table allows the move from the row's state, and none otherwise.

For each target the statement is the product's own (``move_holds(target)`` / ``move_seats(target)`` with every
allowed source, as app/db/status_moves.py builds them) restricted to one row; the row starts in each state in turn.
A move the table forbids cannot even be built. See notes/postgres.md, "Contention".
"""

from __future__ import annotations

import itertools
import uuid

import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.models import Hold, Seat
from app.db.status_moves import ForbiddenMove, move_holds, move_seats
from app.domain import holds, seats
from app.domain.holds import HoldStatus
from app.domain.seats import SeatStatus
from stack.native.stack import NativeStack
from tests.api_users import ApiUser, create_event, new_user


@pytest.fixture(scope="module")
def organizer(stack: NativeStack) -> ApiUser:
    return new_user(stack, organizer=True, label="status-moves")


async def new_hold(engine: AsyncEngine, event_id: str, user_id: str, status: HoldStatus) -> uuid.UUID:
    hold_id = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            insert(Hold).values(
                id=hold_id, event_id=event_id, user_id=user_id, status=status, expires_at=text("now() + interval '1h'")
            )
        )
    return hold_id


@pytest.mark.parametrize(("current", "target"), list(itertools.product(HoldStatus, repeat=2)))
async def test_a_hold_moves_only_where_the_table_allows(
    stack: NativeStack, organizer: ApiUser, engine: AsyncEngine, current: HoldStatus, target: HoldStatus
) -> None:
    event = create_event(stack, organizer, rows=1, seats_per_row=1)
    hold_id = await new_hold(engine, event["id"], organizer.id, current)
    allowed = holds.can_move(current, target)
    if not holds.sources_of(target):
        with pytest.raises(ForbiddenMove):
            move_holds(target)
        return
    async with engine.begin() as conn:
        moved = (await conn.execute(move_holds(target).where(Hold.id == hold_id).returning(Hold.id))).all()
        status = await conn.scalar(text("SELECT status FROM hold WHERE id = :id"), {"id": hold_id})
    assert len(moved) == (1 if allowed else 0)
    assert status == (target if allowed else current)
    if not allowed:
        with pytest.raises(ForbiddenMove):
            move_holds(target, current)


@pytest.mark.parametrize(("current", "target"), list(itertools.product(SeatStatus, repeat=2)))
async def test_a_seat_moves_only_where_the_table_allows(
    stack: NativeStack, organizer: ApiUser, engine: AsyncEngine, current: SeatStatus, target: SeatStatus
) -> None:
    event = create_event(stack, organizer, rows=1, seats_per_row=1)
    hold_id = await new_hold(engine, event["id"], organizer.id, HoldStatus.ACTIVE)
    async with engine.begin() as conn:  # the check constraint ties "available" to "no hold"
        holder = None if current is SeatStatus.AVAILABLE else hold_id
        seat_id = await conn.scalar(
            text("UPDATE seat SET status = :s, hold_id = :h WHERE event_id = :e RETURNING id"),
            {"s": current.value, "h": holder, "e": event["id"]},
        )
    allowed = seats.can_move(current, target)
    if not seats.sources_of(target):
        with pytest.raises(ForbiddenMove):
            move_seats(target)
        return
    moving = move_seats(target).where(Seat.id == seat_id)
    moving = moving.values(hold_id=None if target is SeatStatus.AVAILABLE else hold_id)
    async with engine.begin() as conn:
        moved = (await conn.execute(moving.returning(Seat.id))).all()
        status = await conn.scalar(text("SELECT status FROM seat WHERE id = :id"), {"id": seat_id})
    assert len(moved) == (1 if allowed else 0)
    assert status == (target if allowed else current)
    if not allowed:
        with pytest.raises(ForbiddenMove):
            move_seats(target, current)
