"""``PaymentReconciler``: settles ``paying`` holds whose charge outcome was unknown and whose user never retried.

Why a background job: after a timed-out or garbled charge the hold stays ``paying`` (money may have moved) and only
the user's retry used to settle it; without the retry its seats were lost to the sale, and a charge may have been
taken without a booking. Once the latest attempt is older than a grace period that outlasts every attempt
(``reconciler_grace_s``, checked in ``Settings``), the reconciler asks the provider for the charge made under the
hold's idempotency key (``payment_key``; we never keep the card, so replaying the charge is impossible and would be
wrong) and acts on the answer: charged → ``record_booking``, exactly as the request would have; no charge (or a
declined one) → back to ``active``, and the sweeper expires it if its time is up; no usable answer → nothing
changes, the next round asks again.

Why a lease instead of a lock held across the lookup: a row lock held during an HTTP call would make a user's retry
queue behind the provider (and fail at ``lock_timeout``) and pin a pooled connection per hold. Instead one short
transaction takes a batch with ``FOR UPDATE SKIP LOCKED`` (N workers split the work, like the sweeper) and moves
each hold's ``paying_since`` to now, so no reconciler takes it again for a grace period; the lookup runs outside
any transaction; the outcome is written by conditional updates. ``record_booking`` moves the hold out of ``paying``
for one caller only (booking ``hold_id`` and ``payment_id`` are unique besides), and giving back also requires
``paying_since`` to be the lease's, so a retry that re-claimed the hold meanwhile (its charge may be in flight)
is never undone. See notes/fault_tolerance.md, "Reconciling unknown outcomes".
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import structlog
from sqlalchemy import func, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.background import running_in_background
from app.db.models import Hold
from app.domain.holds import HoldStatus
from app.domain.reconciliation import ChargeFound, Settlement, settle
from app.observability.metrics import ReconcilerMetrics
from app.payments.client import PaymentsClient
from app.payments.outcomes import PaymentRequestRejected, PaymentUnavailable
from app.payments.wire import ProviderCharge
from app.services.bookings import CURRENCY, NO_PAYMENT_ATTEMPT, ClaimedHold, HoldNotBookableError, record_booking
from app.services.unit_of_work import QUIET, UnitOfWork

log = structlog.get_logger(__name__)


class Reconciled(StrEnum):
    BOOKED = "booked"  # the provider had charged: the booking is recorded
    RELEASED = "released"  # the provider had not: the hold is the user's again (or the sweeper's, if expired)
    UNKNOWN = "unknown"  # no usable answer: the hold stays ``paying`` for the next round
    SUPERSEDED = "superseded"  # the hold moved on while we asked (the user's retry booked or re-claimed it)


@dataclass(frozen=True)
class PayingHold:
    """A stuck hold as the reconciler leased it; ``leased_at`` is the ``paying_since`` it now carries."""

    id: uuid.UUID
    user_id: uuid.UUID
    event_id: uuid.UUID
    payment_key: str
    leased_at: datetime


class PaymentReconciler:
    def __init__(
        self,
        engine: AsyncEngine,
        payments: PaymentsClient,
        *,
        grace_s: float,
        batch: int,
        metrics: ReconcilerMetrics,
    ) -> None:
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        if grace_s <= 0:
            raise ValueError(f"the grace period must be positive, got {grace_s}")
        self._engine = engine
        self._payments = payments
        self._grace = timedelta(seconds=grace_s)
        self._batch = batch
        self._metrics = metrics

    async def reconcile_once(self) -> Counter[Reconciled]:
        """One bounded batch: lease it, ask about each hold, stop at the first question the provider leaves open.

        A provider that does not answer one lookup will not answer the next either; the holds not asked about
        keep their lease and are asked about one grace period later."""
        outcomes: Counter[Reconciled] = Counter()
        for hold in await self.take_due():
            try:
                charge = await self._payments.find_charge(hold.payment_key)
            except (PaymentUnavailable, PaymentRequestRejected) as error:
                log.warning("payment_reconcile_unanswered", hold_id=str(hold.id), reason=str(error))
                outcomes[self._observed(hold, Reconciled.UNKNOWN)] += 1
                break
            outcomes[await self.apply(hold, charge)] += 1
        return outcomes

    async def take_due(self) -> list[PayingHold]:
        """Lease up to one batch of holds ``paying`` for longer than the grace period, oldest first."""
        due = (
            select(Hold.id)
            # A literal, for the partial index ix_hold_paying_since (see the sweeper for why not a parameter).
            .where(
                Hold.status == literal_column(f"'{HoldStatus.PAYING.value}'"),
                Hold.paying_since <= func.now() - self._grace,
                Hold.payment_key.is_not(None),
            )
            .order_by(Hold.paying_since)
            .limit(self._batch)
            .with_for_update(skip_locked=True)
        )
        lease = (
            update(Hold)
            .where(Hold.id.in_(due))
            .values(paying_since=func.now())
            .returning(Hold.id, Hold.user_id, Hold.event_id, Hold.payment_key, Hold.paying_since)
            .execution_options(**QUIET)
        )
        async with UnitOfWork(self._engine) as uow:
            rows = (await uow.session.execute(lease)).all()
            await uow.commit()
        return [PayingHold(row.id, row.user_id, row.event_id, str(row.payment_key), row.paying_since) for row in rows]

    async def apply(self, hold: PayingHold, charge: ProviderCharge | None) -> Reconciled:
        """Act on the provider's answer for ``hold`` (None: no charge under its key)."""
        found = None if charge is None else ChargeFound(status=charge.status, currency=charge.currency)
        settlement = settle(found, currency=CURRENCY)
        if settlement is Settlement.ASK_LATER:
            log.error(
                "payment_reconcile_mismatch", hold_id=str(hold.id), charge_id=None if charge is None else charge.id
            )
            return self._observed(hold, Reconciled.UNKNOWN)
        if settlement is Settlement.BOOK and charge is not None:
            return self._observed(hold, await self._book(hold, charge), charge_id=charge.id)
        return self._observed(hold, await self._give_back(hold))

    async def _book(self, hold: PayingHold, charge: ProviderCharge) -> Reconciled:
        """Record the booking for the amount the provider charged (what the claim computed and sent)."""
        claimed = ClaimedHold(event_id=hold.event_id, amount_cents=charge.amount_cents)
        try:
            await record_booking(
                UnitOfWork(self._engine), user_id=hold.user_id, hold_id=hold.id, claimed=claimed, payment_id=charge.id
            )
        except HoldNotBookableError:  # the user's retry recorded the same charge first
            return Reconciled.SUPERSEDED
        return Reconciled.BOOKED

    async def _give_back(self, hold: PayingHold) -> Reconciled:
        give_back = (
            update(Hold)
            .where(Hold.id == hold.id, Hold.status == HoldStatus.PAYING, Hold.paying_since == hold.leased_at)
            .values(status=HoldStatus.ACTIVE, **NO_PAYMENT_ATTEMPT)
            .returning(Hold.id)
            .execution_options(**QUIET)
        )
        async with UnitOfWork(self._engine) as uow:
            given_back = await uow.session.scalar(give_back)
            await uow.commit()
        return Reconciled.SUPERSEDED if given_back is None else Reconciled.RELEASED

    def _observed(self, hold: PayingHold, outcome: Reconciled, charge_id: str | None = None) -> Reconciled:
        self._metrics.observe(outcome.value)
        log.info("payment_reconciled", hold_id=str(hold.id), outcome=outcome.value, charge_id=charge_id)
        return outcome

    async def run(self, interval_s: float) -> None:
        """Reconcile every ``interval_s`` until cancelled; a failed round is logged and the next one still runs."""
        while True:
            await asyncio.sleep(interval_s)  # sleep-ok: the reconciliation schedule, not a synchronisation
            try:
                await self.reconcile_once()
            except Exception:  # the loop must outlive a database outage; the log says what failed
                log.exception("payment_reconcile_failed")

    @asynccontextmanager
    async def running(self, interval_s: float) -> AsyncIterator[asyncio.Task[None]]:
        """Run the reconcile loop as a background task for the duration of the ``async with``; cancel it on exit."""
        async with running_in_background(self.run(interval_s), "payment-reconciler") as task:
            yield task
