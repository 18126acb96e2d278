"""Placing, reading and releasing holds: the no-double-booking decision lives in one statement here.

Why one conditional ``UPDATE`` over rows locked in id order: the statement claims exactly the requested seats that
are still ``available``, locking them in a consistent order so two overlapping multi-seat holds queue instead of
deadlocking. Under READ COMMITTED a transaction that waited for a row lock re-checks ``status = 'available'``
against the committed row, so the loser sees ``held`` and claims nothing. If fewer rows come back than were asked
for, the unit of work rolls back the whole transaction (hold row included): all or nothing, 409. The design, its
alternatives (SERIALIZABLE with retry, optimistic versions) and the proof are in notes/postgres.md,
"Contention".
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Event, Hold, Seat
from app.domain.holds import HoldStatus, expires_at
from app.domain.seats import SeatStatus
from app.services.events import EventNotFoundError
from app.services.unit_of_work import QUIET, UnitOfWork


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


class HoldNotReleasableError(Exception):
    """The hold is being paid for or is booked; its seats are no longer the holder's to give back."""

    def __init__(self, status: HoldStatus) -> None:
        super().__init__(f"a {status} hold cannot be released")
        self.status = status


async def place_hold(
    uow: UnitOfWork,
    *,
    user_id: uuid.UUID,
    event_id: uuid.UUID,
    seat_ids: tuple[uuid.UUID, ...],
    ttl_s: int,
    now: datetime,
) -> HoldRecord:
    """Hold every seat in ``seat_ids`` (canonical order, see ``domain.holds.seat_request``) or none of them."""
    hold_id = uuid.uuid4()
    expiry = expires_at(now, ttl_s)
    async with uow:
        session = uow.session
        if await session.scalar(select(Event.id).where(Event.id == event_id)) is None:
            raise EventNotFoundError(event_id)
        await session.execute(insert(Hold).values(id=hold_id, event_id=event_id, user_id=user_id, expires_at=expiry))
        claimable = (
            select(Seat.id)
            .where(Seat.event_id == event_id, Seat.id.in_(seat_ids), Seat.status == SeatStatus.AVAILABLE)
            .order_by(Seat.id)
            .with_for_update()
        )
        claim = (
            update(Seat)
            .where(Seat.id.in_(claimable))
            .values(status=SeatStatus.HELD, hold_id=hold_id)
            .returning(Seat.id)
            .execution_options(**QUIET)
        )
        claimed = set((await session.execute(claim)).scalars())
        if len(claimed) != len(seat_ids):
            raise SeatsNotAvailableError([seat for seat in seat_ids if seat not in claimed])
        await uow.commit()
    return HoldRecord(hold_id, event_id, seat_ids, expiry, HoldStatus.ACTIVE)


async def get_hold(uow: UnitOfWork, *, hold_id: uuid.UUID, user_id: uuid.UUID) -> HoldRecord:
    """The caller's hold and the seats it claims now (none once it expired or was released)."""
    async with uow:
        hold = await uow.session.get(Hold, hold_id)
        if hold is None or hold.user_id != user_id:
            raise HoldNotFoundError(hold_id)
        seats = await uow.session.scalars(select(Seat.id).where(Seat.hold_id == hold_id).order_by(Seat.id))
        return HoldRecord(hold.id, hold.event_id, tuple(seats), hold.expires_at, HoldStatus(hold.status))


async def release_hold(uow: UnitOfWork, *, hold_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Give the seats back. Idempotent: an already expired or released hold is fine; a paying or booked one is not.

    The conditional ``UPDATE … WHERE status = 'active'`` races safely with the sweeper: whichever commits first
    wins, and the other finds the hold no longer active.
    """
    async with uow:
        session = uow.session
        released = await session.scalar(
            update(Hold)
            .where(Hold.id == hold_id, Hold.user_id == user_id, Hold.status == HoldStatus.ACTIVE)
            .values(status=HoldStatus.RELEASED)
            .returning(Hold.id)
            .execution_options(**QUIET)
        )
        if released is None:
            status = await session.scalar(select(Hold.status).where(Hold.id == hold_id, Hold.user_id == user_id))
            if status is None:
                raise HoldNotFoundError(hold_id)
            if HoldStatus(status) in (HoldStatus.PAYING, HoldStatus.BOOKED):
                raise HoldNotReleasableError(HoldStatus(status))
            return
        await free_seats(session, [hold_id])
        await uow.commit()


async def free_seats(session: AsyncSession, hold_ids: Sequence[uuid.UUID]) -> None:
    """Seats of ended holds go back to ``available`` (held → available; sold seats never move back)."""
    await session.execute(
        update(Seat)
        .where(Seat.hold_id.in_(hold_ids), Seat.status == SeatStatus.HELD)
        .values(status=SeatStatus.AVAILABLE, hold_id=None)
        .execution_options(**QUIET)
    )
