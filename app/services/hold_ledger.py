"""``SqlHoldLedger``: the SQL behind a payment attempt (claim, give back, record) and the reconciler's lease, each
one short transaction on the primary and each status move built by app/db/status_moves.py.

Why conditional statements and no locks held across the charge: only the statement that finds the hold in the
state its move starts from changes it, so of two racers (a user's retry and the reconciler, two retries, the
sweeper) exactly one wins and the other learns it from an empty ``RETURNING``. The lease (``FOR UPDATE SKIP
LOCKED`` on due ``paying`` holds, ``paying_since`` moved to now) lets N reconcilers split the work without waiting
for each other, and giving back after a lease also requires ``paying_since`` to be the lease's, so a retry that
re-claimed the hold meanwhile (its charge may be in flight) is never undone. A ledger built with a ``Fence`` (the
reconciler's, under its Redis lease) passes it as the first statement of every transaction, so a reconciler that
lost its lease to a newer one can no longer write (app/db/fences.py). A recorded booking appends
``booking.confirmed`` in its own transaction, and a settlement by the reconciler (a booking it recorded, or a hold it
gave back after a lease) appends ``payment.settled`` beside it (notes/rabbitmq.md, "The outbox and its relay"). See
notes/fault_tolerance.md, "Reconciling unknown outcomes", notes/postgres.md, "Contention", and notes/redis.md, "A
lease with fencing tokens".
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from sqlalchemy import and_, func, insert, literal_column, or_, select, update

from app.db.fences import Fence, pass_fence
from app.db.models import Booking, Event, Hold, Seat
from app.db.status_moves import BULK, move_holds, move_seats
from app.domain.holds import HoldStatus
from app.domain.money import total_cents
from app.domain.seats import SeatStatus
from app.messaging.envelope import BookingConfirmedV1, PaymentSettledV1
from app.services.events import CANCELLED
from app.services.payment_attempts import (
    BookingRecord,
    ClaimedHold,
    HoldNotBookableError,
    NotBookable,
    PayingHold,
)
from app.services.unit_of_work import UnitOfWork, UnitOfWorkFactory

NO_PAYMENT_ATTEMPT: dict[str, None] = {"payment_key": None, "paying_since": None}


class SqlHoldLedger:
    def __init__(self, uows: UnitOfWorkFactory, fence: Fence | None = None) -> None:
        self._uows = uows
        self._fence = fence

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[UnitOfWork]:
        """One unit of work; with a fence, refused (``FencedOutError``) before it writes if a newer token wrote."""
        async with self._uows() as uow:
            if self._fence is not None:
                await pass_fence(uow.session, self._fence)
            yield uow

    async def claim(self, *, user_id: uuid.UUID, hold_id: uuid.UUID, payment_key: str, now: datetime) -> ClaimedHold:
        """``active → paying`` (or ``paying`` again after an unknown outcome) in one conditional statement.

        ``paying_since`` is the database's clock, the one the reconciler's grace period is measured on; a retry
        moves it forward, so a hold whose user is still trying is never reconciled under them. A ``paying`` hold is
        claimed again only with the *same* key: a retry with another card while the first card's charge is
        unsettled would be a second charge for one booking, and would overwrite the key the reconciler needs to
        settle the first (``payment-unsettled`` until the first is settled, by a retry with that card or by the
        reconciler). Nothing is claimed for an event that was cancelled (``event-cancelled``); a hold already
        ``paying`` when its event was cancelled is settled by the reconciler as any unknown outcome is."""
        same_charge = or_(Hold.payment_key.is_(None), Hold.payment_key == payment_key)
        claimable = or_(
            and_(Hold.status == HoldStatus.ACTIVE, Hold.expires_at > now),
            and_(Hold.status == HoldStatus.PAYING, same_charge),
        )
        # The event row under a share lock: a cancel (an UPDATE of that row) and a claim serialize. A claim after a
        # committed cancel reads "cancelled" and charges nothing; a cancel waits for a claim already in flight.
        event_status = (
            select(Event.status)
            .join(Hold, Hold.event_id == Event.id)
            .where(Hold.id == hold_id, Hold.user_id == user_id)
            .with_for_update(read=True, of=Event)
        )
        claim = (
            move_holds(HoldStatus.PAYING, {HoldStatus.ACTIVE, HoldStatus.PAYING})
            .where(Hold.id == hold_id, Hold.user_id == user_id, claimable)
            .values(payment_key=payment_key, paying_since=func.now())
            .returning(Hold.event_id)
        )
        async with self._transaction() as uow:
            if await uow.session.scalar(event_status) == CANCELLED:
                raise HoldNotBookableError(NotBookable.EVENT_CANCELLED)
            event_id = await uow.session.scalar(claim)
            if event_id is None:
                raise HoldNotBookableError(await _why_not(uow, user_id=user_id, hold_id=hold_id))
            price = await uow.session.scalar(select(Event.price_cents).where(Event.id == event_id))
            seats = await uow.session.scalar(select(func.count()).select_from(Seat).where(Seat.hold_id == hold_id))
            claimed = ClaimedHold(event_id=event_id, amount_cents=total_cents(price or 0, seats or 0))
            await uow.commit()
        return claimed

    async def give_back(self, hold_id: uuid.UUID, *, leased_at: datetime | None = None) -> bool:
        """``paying → active``: the charge did not happen, the hold is the user's again until it expires. With
        ``leased_at``, only if no retry re-claimed the hold since the reconciler leased it. False: nothing moved."""
        give_back = move_holds(HoldStatus.ACTIVE, HoldStatus.PAYING).where(Hold.id == hold_id)
        if leased_at is not None:
            give_back = give_back.where(Hold.paying_since == leased_at)
        returning = give_back.values(**NO_PAYMENT_ATTEMPT).returning(Hold.event_id, Hold.user_id)
        async with self._transaction() as uow:
            given_back = (await uow.session.execute(returning)).one_or_none()
            if given_back is not None and leased_at is not None:
                settled = PaymentSettledV1(
                    hold_id=hold_id,
                    event_id=given_back.event_id,
                    user_id=given_back.user_id,
                    outcome="released",
                    booking_id=None,
                )
                await uow.outbox.add("payment.settled", settled)
            await uow.commit()
        return given_back is not None

    async def record(
        self,
        *,
        user_id: uuid.UUID,
        hold_id: uuid.UUID,
        claimed: ClaimedHold,
        payment_id: str,
        reconciled: bool = False,
    ) -> BookingRecord | None:
        """``paying → booked``, seats ``held → sold``, the booking inserted, ``booking.confirmed`` appended (and
        ``payment.settled`` when ``reconciled``); None when another caller moved the hold out of ``paying`` first
        (``booking.hold_id`` and ``booking.payment_id`` are unique besides)."""
        async with self._transaction() as uow:
            session = uow.session
            booked = await session.scalar(
                move_holds(HoldStatus.BOOKED, HoldStatus.PAYING).where(Hold.id == hold_id).returning(Hold.id)
            )
            if booked is None:
                return None
            sold = await session.scalars(
                move_seats(SeatStatus.SOLD, SeatStatus.HELD).where(Seat.hold_id == hold_id).returning(Seat.id)
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
            await _append_booked(uow, row.id, user_id=user_id, hold_id=hold_id, claimed=claimed, seat_ids=seat_ids)
            if reconciled:
                settled = PaymentSettledV1(
                    hold_id=hold_id, event_id=claimed.event_id, user_id=user_id, outcome="booked", booking_id=row.id
                )
                await uow.outbox.add("payment.settled", settled)
            await uow.commit()
        return BookingRecord(row.id, claimed.event_id, seat_ids, row.status, claimed.amount_cents, row.created_at)

    async def lease_due(self, *, grace: timedelta, batch: int) -> list[PayingHold]:
        """Lease up to ``batch`` holds ``paying`` for longer than ``grace``, oldest first (not a status move: the
        lease only moves ``paying_since`` to now, so no reconciler takes them again for a grace period)."""
        due = (
            select(Hold.id)
            # A literal, for the partial index ix_hold_paying_since (see the sweeper for why not a parameter).
            .where(
                Hold.status == literal_column(f"'{HoldStatus.PAYING.value}'"),
                Hold.paying_since <= func.now() - grace,
                Hold.payment_key.is_not(None),
            )
            .order_by(Hold.paying_since)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
        lease = (
            update(Hold)
            .where(Hold.id.in_(due))
            .values(paying_since=func.now())
            .returning(Hold.id, Hold.user_id, Hold.event_id, Hold.payment_key, Hold.paying_since)
            .execution_options(**BULK)
        )
        async with self._transaction() as uow:
            rows = (await uow.session.execute(lease)).all()
            await uow.commit()
        return [PayingHold(row.id, row.user_id, row.event_id, str(row.payment_key), row.paying_since) for row in rows]


async def _append_booked(
    uow: UnitOfWork,
    booking_id: uuid.UUID,
    *,
    user_id: uuid.UUID,
    hold_id: uuid.UUID,
    claimed: ClaimedHold,
    seat_ids: tuple[uuid.UUID, ...],
) -> None:
    confirmed = BookingConfirmedV1(
        booking_id=booking_id,
        hold_id=hold_id,
        event_id=claimed.event_id,
        user_id=user_id,
        amount_cents=claimed.amount_cents,
        seat_ids=list(seat_ids),
    )
    await uow.outbox.add("booking.confirmed", confirmed)


async def _why_not(uow: UnitOfWork, *, user_id: uuid.UUID, hold_id: uuid.UUID) -> NotBookable:
    status = await uow.session.scalar(select(Hold.status).where(Hold.id == hold_id, Hold.user_id == user_id))
    if status is None:
        return NotBookable.NOT_FOUND
    if status == HoldStatus.PAYING:
        return NotBookable.PAYMENT_UNSETTLED
    return NotBookable.BOOKED if status == HoldStatus.BOOKED else NotBookable.EXPIRED
