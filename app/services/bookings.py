"""Booking a hold: claim it for payment, charge the provider outside any transaction, then record the outcome.

Why three short steps instead of one long transaction: a transaction held open across an HTTP call to a flaky
provider holds row locks for seconds and pins a pooled connection per request in flight; under a flash sale the
pool runs dry. Instead, step 1 moves the hold ``active → paying`` with one conditional UPDATE (the sweeper never
touches ``paying`` holds); step 2 charges with the provider idempotency key ``hold-<id>-<card>``, so every retry of
every request for this hold and card is one charge at most (a different card after a decline is a new charge);
step 3 sells the seats and inserts the booking (``booking.hold_id`` and ``booking.payment_id`` are unique: one
booking per hold, a charge recorded once).

When the charge did not happen for sure (declined, the breaker refused before sending, the provider refused the
request) the hold goes back to ``active``. When the outcome is *unknown* (attempts were sent and timed out or
failed), the hold stays ``paying``: money may have moved. A retry for the same hold re-enters ``paying`` and asks
the provider again with the same key, which returns the charge if it happened and makes it if not — so the
user can always finish, and is charged at most once. The claim records the key and when the attempt began
(``payment_key``, ``paying_since``), so a hold whose user never retries is settled by the ``PaymentReconciler``.
See notes/fault_tolerance.md, "Idempotency keys" and "Reconciling unknown outcomes", and notes/postgres.md,
"Contention".
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, func, insert, or_, select, tuple_, update

from app.db.models import Booking, Event, Hold, Seat
from app.domain.holds import HoldStatus
from app.domain.money import total_cents
from app.domain.seats import SeatStatus
from app.payments.client import PaymentsClient
from app.payments.outcomes import PaymentRequestRejected, PaymentUnavailable
from app.services.unit_of_work import QUIET, UnitOfWork

CURRENCY = "EUR"
NO_PAYMENT_ATTEMPT: dict[str, None] = {"payment_key": None, "paying_since": None}


@dataclass(frozen=True)
class BookingRecord:
    id: uuid.UUID
    event_id: uuid.UUID
    seat_ids: tuple[uuid.UUID, ...]
    status: str
    amount_cents: int
    created_at: datetime


class HoldNotBookableError(Exception):
    """The hold cannot be paid for; ``reason`` is one of: not-found, expired, booked, payment-unsettled."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PaymentDeclinedError(Exception):
    def __init__(self, decline_code: str | None) -> None:
        super().__init__(decline_code or "declined")
        self.decline_code = decline_code


def provider_key(hold_id: uuid.UUID, card_token: str) -> str:
    """One logical charge = one hold paid with one card: retries reuse it, another card is another charge."""
    card = hashlib.sha256(card_token.encode()).hexdigest()[:16]
    return f"hold-{hold_id}-{card}"


@dataclass(frozen=True)
class ClaimedHold:
    event_id: uuid.UUID
    amount_cents: int


async def book_hold(
    uow: UnitOfWork, payments: PaymentsClient, *, user_id: uuid.UUID, hold_id: uuid.UUID, card_token: str, now: datetime
) -> BookingRecord:
    key = provider_key(hold_id, card_token)
    claimed = await _claim_for_payment(uow, user_id=user_id, hold_id=hold_id, payment_key=key, now=now)
    try:
        result = await payments.charge(
            amount_cents=claimed.amount_cents,
            currency=CURRENCY,
            card_token=card_token,
            idempotency_key=key,
            description=f"refstack booking of hold {hold_id}",
        )
    except PaymentUnavailable as error:
        if not error.outcome_unknown:
            await _give_back(uow, hold_id)
        raise
    except PaymentRequestRejected:
        await _give_back(uow, hold_id)
        raise
    if not result.succeeded:
        await _give_back(uow, hold_id)
        raise PaymentDeclinedError(result.decline_code)
    return await record_booking(uow, user_id=user_id, hold_id=hold_id, claimed=claimed, payment_id=result.charge_id)


async def _claim_for_payment(
    uow: UnitOfWork, *, user_id: uuid.UUID, hold_id: uuid.UUID, payment_key: str, now: datetime
) -> ClaimedHold:
    """``active → paying`` (or ``paying`` again after an unknown outcome) in one conditional statement.

    ``paying_since`` is the database's clock, the one the reconciler's grace period is measured on; a retry moves
    it forward, so a hold whose user is still trying is never reconciled under them. A ``paying`` hold is claimed
    again only with the *same* key: a retry with another card while the first card's charge is unsettled would be
    a second charge for one booking, and would overwrite the key the reconciler needs to settle the first
    (``payment-unsettled`` until the first is settled, by a retry with that card or by the reconciler)."""
    async with uow:
        session = uow.session
        same_charge = or_(Hold.payment_key.is_(None), Hold.payment_key == payment_key)
        claimable = or_(
            and_(Hold.status == HoldStatus.ACTIVE, Hold.expires_at > now),
            and_(Hold.status == HoldStatus.PAYING, same_charge),
        )
        event_id = await session.scalar(
            update(Hold)
            .where(Hold.id == hold_id, Hold.user_id == user_id, claimable)
            .values(status=HoldStatus.PAYING, payment_key=payment_key, paying_since=func.now())
            .returning(Hold.event_id)
            .execution_options(**QUIET)
        )
        if event_id is None:
            raise HoldNotBookableError(await _why_not(uow, user_id=user_id, hold_id=hold_id))
        price = await session.scalar(select(Event.price_cents).where(Event.id == event_id))
        seats = await session.scalar(select(func.count()).select_from(Seat).where(Seat.hold_id == hold_id))
        claimed = ClaimedHold(event_id=event_id, amount_cents=total_cents(price or 0, seats or 0))
        await uow.commit()
    return claimed


async def _why_not(uow: UnitOfWork, *, user_id: uuid.UUID, hold_id: uuid.UUID) -> str:
    status = await uow.session.scalar(select(Hold.status).where(Hold.id == hold_id, Hold.user_id == user_id))
    if status is None:
        return "not-found"
    if status == HoldStatus.PAYING:
        return "payment-unsettled"
    return "booked" if status == HoldStatus.BOOKED else "expired"


async def _give_back(uow: UnitOfWork, hold_id: uuid.UUID) -> None:
    """The charge did not happen (declined, provider down): the hold is the user's again until it expires."""
    async with uow:
        await uow.session.execute(
            update(Hold)
            .where(Hold.id == hold_id, Hold.status == HoldStatus.PAYING)
            .values(status=HoldStatus.ACTIVE, **NO_PAYMENT_ATTEMPT)
            .execution_options(**QUIET)
        )
        await uow.commit()


async def record_booking(
    uow: UnitOfWork, *, user_id: uuid.UUID, hold_id: uuid.UUID, claimed: ClaimedHold, payment_id: str
) -> BookingRecord:
    """``paying → booked``, seats sold, the booking inserted: step 3 of a booking, and the reconciler's "charged".

    Only one caller can move the hold out of ``paying``; the others get ``HoldNotBookableError("booked")``."""
    async with uow:
        session = uow.session
        booked = await session.scalar(
            update(Hold)
            .where(Hold.id == hold_id, Hold.status == HoldStatus.PAYING)
            .values(status=HoldStatus.BOOKED)
            .returning(Hold.id)
            .execution_options(**QUIET)
        )
        if booked is None:  # a concurrent request for the same hold recorded the (same) charge first
            raise HoldNotBookableError("booked")
        sold = await session.scalars(
            update(Seat)
            .where(Seat.hold_id == hold_id, Seat.status == SeatStatus.HELD)
            .values(status=SeatStatus.SOLD)
            .returning(Seat.id)
            .execution_options(**QUIET)
        )
        seat_ids = tuple(sorted(sold))
        row = (
            await session.execute(
                insert(Booking)
                .values(
                    user_id=user_id,
                    event_id=claimed.event_id,
                    hold_id=hold_id,
                    amount_cents=claimed.amount_cents,
                    payment_id=payment_id,
                )
                .returning(Booking.id, Booking.status, Booking.created_at)
            )
        ).one()
        await uow.commit()
    return BookingRecord(row.id, claimed.event_id, seat_ids, row.status, claimed.amount_cents, row.created_at)


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


async def get_booking(uow: UnitOfWork, *, user_id: uuid.UUID, booking_id: uuid.UUID) -> BookingRecord | None:
    """The caller's booking, or None — also for someone else's (no existence leak)."""
    async with uow:
        row = (await uow.session.execute(_booking_query(user_id).where(Booking.id == booking_id))).one_or_none()
        return None if row is None else _record(row[0], row[1])


async def list_bookings(
    uow: UnitOfWork, *, user_id: uuid.UUID, before: tuple[datetime, uuid.UUID] | None, fetch: int
) -> list[BookingRecord]:
    """Newest first, keyset on ``(created_at, id)``: one query for the page and its seats, whatever its size."""
    query = _booking_query(user_id)
    if before is not None:
        query = query.where(tuple_(Booking.created_at, Booking.id) < tuple_(*before))
    query = query.order_by(Booking.created_at.desc(), Booking.id.desc()).limit(fetch)
    async with uow:
        rows = (await uow.session.execute(query)).all()
        return [_record(row[0], row[1]) for row in rows]
