"""Placing, reading and releasing holds: the no-double-booking decision lives in one statement here.

Why one conditional ``UPDATE`` over rows locked in id order: the statement claims exactly the requested seats that
are still ``available``, locking them in a consistent order so two overlapping multi-seat holds queue instead of
deadlocking. Under READ COMMITTED a transaction that waited for a row lock re-checks ``status = 'available'``
against the committed row, so the loser sees ``held`` and claims nothing. If fewer rows come back than were asked
for, the unit of work rolls back the whole transaction (hold row included): all or nothing, 409. The design, its
alternatives (SERIALIZABLE with retry, optimistic versions) and the proof are in notes/postgres.md,
"Contention". The per-account cap on active holds is decided in the same transaction, under a lock on the
user's row: notes/security.md, "Resource caps per user". Every status move here (claim, release, free) is built
from the transition tables by app/db/status_moves.py. A placed and a released hold each append their message
(``hold.placed``, ``hold.released``) in the same transaction (notes/rabbitmq.md, "The outbox and its relay").
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Event, Hold, Seat, User
from app.db.status_moves import move_holds, move_seats
from app.domain.holds import HOLDING, HoldStatus, check_hold_quota, expires_at
from app.domain.seats import SeatStatus
from app.messaging.envelope import HoldEndedV1, HoldPlacedV1
from app.services.events import CANCELLED, EventCancelledError, EventNotFoundError
from app.services.unit_of_work import UnitOfWorkFactory


@dataclass(frozen=True)
class HoldRecord:
    id: uuid.UUID
    event_id: uuid.UUID
    seat_ids: tuple[uuid.UUID, ...]
    expires_at: datetime
    status: HoldStatus


class SeatsNotAvailableError(Exception):
    """Some requested seats are held, sold, or not seats of this event; nothing was held."""

    def __init__(self, unavailable: Sequence[uuid.UUID]) -> None:
        super().__init__(f"{len(unavailable)} seat(s) not available")
        self.unavailable = tuple(unavailable)


class HoldNotFoundError(LookupError):
    """No hold with this id belongs to the caller (someone else's hold is not found either)."""

    def __init__(self, hold_id: uuid.UUID) -> None:
        super().__init__(f"no hold {hold_id}")
        self.hold_id = hold_id


class HoldNotReleasableError(Exception):
    """The hold is being paid for or is booked; its seats are no longer the holder's to give back."""

    def __init__(self, status: HoldStatus) -> None:
        super().__init__(f"a {status} hold cannot be released")
        self.status = status


async def place_hold(
    uows: UnitOfWorkFactory,
    *,
    user_id: uuid.UUID,
    event_id: uuid.UUID,
    seat_ids: tuple[uuid.UUID, ...],
    ttl_s: int,
    now: datetime,
    max_active_holds: int,
) -> HoldRecord:
    """Hold every seat in ``seat_ids`` (canonical order, see ``domain.holds.seat_request``) or none of them, and
    only while the user has fewer than ``max_active_holds`` holds (``HoldLimitError`` otherwise)."""
    hold_id = uuid.uuid4()
    expiry = expires_at(now, ttl_s)
    async with uows() as uow:
        session = uow.session
        # The event's existence and, in the same round trip, a first unlocked count: an account already at its cap
        # is refused before it locks a seat someone else may want.
        found = await session.execute(
            select(Event.status, other_active_holds(user_id, hold_id, now).scalar_subquery()).where(
                Event.id == event_id
            )
        )
        row = found.one_or_none()
        if row is None:
            raise EventNotFoundError(event_id)
        if row[0] == CANCELLED:
            raise EventCancelledError(event_id)
        check_hold_quota(row[1], limit=max_active_holds)
        await session.execute(insert(Hold).values(id=hold_id, event_id=event_id, user_id=user_id, expires_at=expiry))
        claimable = (
            select(Seat.id)
            .where(Seat.event_id == event_id, Seat.id.in_(seat_ids), Seat.status == SeatStatus.AVAILABLE)
            .order_by(Seat.id)
            .with_for_update()
        )
        claim = (
            move_seats(SeatStatus.HELD, SeatStatus.AVAILABLE)
            .where(Seat.id.in_(claimable))
            .values(hold_id=hold_id)
            .returning(Seat.id)
        )
        claimed = set((await session.execute(claim)).scalars())
        if len(claimed) != len(seat_ids):
            raise SeatsNotAvailableError([seat for seat in seat_ids if seat not in claimed])
        await _lock_hold_quota(session, user_id)
        check_hold_quota(await session.scalar(other_active_holds(user_id, hold_id, now)) or 0, limit=max_active_holds)
        placed = HoldPlacedV1(
            hold_id=hold_id, event_id=event_id, user_id=user_id, seat_ids=list(seat_ids), expires_at=expiry
        )
        await uow.outbox.add("hold.placed", placed)
        await uow.commit()
    return HoldRecord(hold_id, event_id, seat_ids, expiry, HoldStatus.ACTIVE)


async def _lock_hold_quota(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Serialise the quota decision of one user's concurrent hold placements, until this transaction ends.

    Why: under READ COMMITTED two concurrent requests of one user would both count N - 1 and both commit. With
    ``FOR NO KEY UPDATE`` on the user's row the second waits here until the first committed, then counts it. Not
    ``FOR UPDATE``: foreign-key checks (a booking or refresh token inserted for this user) take ``FOR KEY SHARE``,
    which ``NO KEY UPDATE`` does not block. Taken *last*, after the seat locks, and followed only by a count and the
    commit: its holder never waits for another lock, so it is held for two short round trips and closes no
    deadlock cycle (taken first, a user's queued requests would wait behind one that waits for a seat).
    """
    await session.execute(select(User.id).where(User.id == user_id).with_for_update(key_share=True))


def other_active_holds(user_id: uuid.UUID, hold_id: uuid.UUID, now: datetime) -> Select[int]:
    """Count the user's holds that still tie up seats (active and unexpired, or paying), other than ``hold_id``.

    Counted in a statement of its own after ``_lock_hold_quota``: a READ COMMITTED statement reads the snapshot
    taken when it *started*, so a count folded into the locking statement would miss the hold committed by the
    transaction it waited for."""
    return (
        select(func.count())
        .select_from(Hold)
        .where(
            Hold.user_id == user_id,
            Hold.id != hold_id,
            Hold.status.in_(HOLDING),
            or_(Hold.status == HoldStatus.PAYING, Hold.expires_at > now),
        )
    )


async def get_hold(uows: UnitOfWorkFactory, *, hold_id: uuid.UUID, user_id: uuid.UUID) -> HoldRecord:
    """The caller's hold and the seats it claims now (none once it expired or was released)."""
    async with uows() as uow:
        hold = await uow.session.get(Hold, hold_id)
        if hold is None or hold.user_id != user_id:
            raise HoldNotFoundError(hold_id)
        seats = await uow.session.scalars(select(Seat.id).where(Seat.hold_id == hold_id).order_by(Seat.id))
        return HoldRecord(hold.id, hold.event_id, tuple(seats), hold.expires_at, HoldStatus(hold.status))


async def release_hold(uows: UnitOfWorkFactory, *, hold_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Give the seats back. Idempotent: an already expired or released hold is fine; a paying or booked one is not.

    The conditional ``UPDATE … WHERE status = 'active'`` races safely with the sweeper: whichever commits first
    wins, and the other finds the hold no longer active.
    """
    async with uows() as uow:
        session = uow.session
        released = await session.scalar(
            move_holds(HoldStatus.RELEASED, HoldStatus.ACTIVE)
            .where(Hold.id == hold_id, Hold.user_id == user_id)
            .returning(Hold.event_id)
        )
        if released is None:
            status = await session.scalar(select(Hold.status).where(Hold.id == hold_id, Hold.user_id == user_id))
            if status is None:
                raise HoldNotFoundError(hold_id)
            if HoldStatus(status) in (HoldStatus.PAYING, HoldStatus.BOOKED):
                raise HoldNotReleasableError(HoldStatus(status))
            return
        await free_seats(session, [hold_id])
        await uow.outbox.add("hold.released", HoldEndedV1(hold_id=hold_id, event_id=released, user_id=user_id))
        await uow.commit()


async def free_seats(session: AsyncSession, hold_ids: Sequence[uuid.UUID]) -> None:
    """Seats of ended holds go back to ``available`` (held → available; sold seats never move back)."""
    await session.execute(
        move_seats(SeatStatus.AVAILABLE, SeatStatus.HELD).where(Seat.hold_id.in_(hold_ids)).values(hold_id=None)
    )
