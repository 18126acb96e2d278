"""Bookings: paying for a hold (``book_hold``, which ``PaymentAttempts`` carries out) and reading the caller's
bookings.

Why the payment itself is not here: claim → charge → record or give back is one concern with two callers (this
request and the ``PaymentReconciler``), owned by app/services/payment_attempts.py. What stays here is the read side:
one query per page, however many seats a booking has, and someone else's booking is not found (no existence leak).
See notes/fault_tolerance.md, "Idempotency keys", and notes/rest_design.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, func, select, tuple_

from app.db.models import Booking, Seat
from app.services.hold_ledger import SqlHoldLedger
from app.services.payment_attempts import BookingRecord, PaymentAttempts, PaymentGateway
from app.services.unit_of_work import UnitOfWorkFactory


async def book_hold(
    uows: UnitOfWorkFactory,
    payments: PaymentGateway,
    *,
    user_id: uuid.UUID,
    hold_id: uuid.UUID,
    card_token: str,
    now: datetime,
) -> BookingRecord:
    """Pay for the caller's hold; raises the errors of app/services/payment_attempts.py."""
    attempts = PaymentAttempts(SqlHoldLedger(uows), payments)
    return await attempts.pay(user_id=user_id, hold_id=hold_id, card_token=card_token, now=now)


def _booking_query(user_id: uuid.UUID) -> Select[Booking, Sequence[uuid.UUID]]:
    seat_ids = func.array_agg(Seat.id).filter(Seat.id.is_not(None))
    return (
        select(Booking, seat_ids.label("seat_ids"))
        .outerjoin(Seat, Seat.hold_id == Booking.hold_id)
        .where(Booking.user_id == user_id)
        .group_by(Booking.id)
    )


def _record(booking: Booking, seat_ids: Sequence[uuid.UUID] | None) -> BookingRecord:
    return BookingRecord(
        booking.id,
        booking.event_id,
        tuple(sorted(seat_ids or ())),
        booking.status,
        booking.amount_cents,
        booking.created_at,
    )


async def get_booking(uows: UnitOfWorkFactory, *, user_id: uuid.UUID, booking_id: uuid.UUID) -> BookingRecord | None:
    """The caller's booking, or None — also for someone else's (no existence leak)."""
    async with uows() as uow:
        row = (await uow.session.execute(_booking_query(user_id).where(Booking.id == booking_id))).one_or_none()
        return None if row is None else _record(row[0], row[1])


async def list_bookings(
    uows: UnitOfWorkFactory, *, user_id: uuid.UUID, before: tuple[datetime, uuid.UUID] | None, fetch: int
) -> list[BookingRecord]:
    """Newest first, keyset on ``(created_at, id)``: one query for the page and its seats, whatever its size."""
    query = _booking_query(user_id)
    if before is not None:
        query = query.where(tuple_(Booking.created_at, Booking.id) < tuple_(*before))
    query = query.order_by(Booking.created_at.desc(), Booking.id.desc()).limit(fetch)
    async with uows() as uow:
        rows = (await uow.session.execute(query)).all()
        return [_record(row[0], row[1]) for row in rows]
