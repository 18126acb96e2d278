"""``PaymentReconciler``: settles ``paying`` holds whose charge outcome was unknown and whose user never retried.

Why a background job: after a timed-out or garbled charge the hold stays ``paying`` (money may have moved) and only
the user's retry used to settle it; without the retry its seats were lost to the sale, and a charge may have been
taken without a booking. Once the latest attempt is older than a grace period that outlasts every attempt
(``reconciler_grace_s``, checked in ``Settings``), the reconciler asks the provider for the charge made under the
hold's idempotency key (``payment_key``; we never keep the card, so replaying the charge is impossible and would be
wrong) and acts on the answer through ``PaymentAttempts.settle`` — the same owner of claim, charge and record that the
booking request uses: charged → the booking is recorded, exactly as the request would have; no charge (or a
declined one) → back to ``active``, and the sweeper expires it if its time is up; no usable answer → nothing
changes, the next round asks again.

Why a lease instead of a lock held across the lookup: a row lock held during an HTTP call would make a user's retry
queue behind the provider (and fail at ``lock_timeout``) and pin a pooled connection per hold. Instead one short
transaction takes a batch with ``FOR UPDATE SKIP LOCKED`` (N workers split the work, like the sweeper) and moves
each hold's ``paying_since`` to now, so no reconciler takes it again for a grace period; the lookup runs outside
any transaction; the outcome is written by conditional updates (app/services/hold_ledger.py). Every transaction is
one of the app's units of work, with the same ``lock_timeout`` and ``statement_timeout`` as a request's: a round
blocked behind a user's row lock gives up instead of pinning a connection. The loop is the app's one periodic-job
runner (app/background.py). See notes/fault_tolerance.md, "Reconciling unknown outcomes".
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import structlog

from app.observability.metrics import ReconcilerMetrics
from app.payments.wire import ProviderCharge
from app.services.hold_ledger import SqlHoldLedger
from app.services.payment_attempts import (
    PayingHold,
    PaymentAttempts,
    PaymentGateway,
    PaymentProviderUnavailableError,
    Reconciled,
)
from app.services.unit_of_work import UnitOfWorkFactory

log = structlog.get_logger(__name__)


class PaymentReconciler:
    def __init__(
        self,
        uows: UnitOfWorkFactory,
        payments: PaymentGateway,
        *,
        grace_s: float,
        batch: int,
        metrics: ReconcilerMetrics,
    ) -> None:
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        if grace_s <= 0:
            raise ValueError(f"the grace period must be positive, got {grace_s}")
        self._ledger = SqlHoldLedger(uows)
        self._attempts = PaymentAttempts(self._ledger, payments)
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
                outcome = await self._attempts.settle(hold)
            except PaymentProviderUnavailableError:
                outcomes[self._observed(hold, Reconciled.UNKNOWN)] += 1
                break
            outcomes[self._observed(hold, outcome)] += 1
        return outcomes

    async def take_due(self) -> list[PayingHold]:
        """Lease up to one batch of holds ``paying`` for longer than the grace period, oldest first."""
        return await self._ledger.lease_due(grace=self._grace, batch=self._batch)

    async def apply(self, hold: PayingHold, charge: ProviderCharge | None) -> Reconciled:
        """Act on the provider's answer for ``hold`` (None: no charge under its key)."""
        return self._observed(hold, await self._attempts.apply(hold, charge))

    def _observed(self, hold: PayingHold, outcome: Reconciled) -> Reconciled:
        self._metrics.observe(outcome.value)
        log.info("payment_reconciled", hold_id=str(hold.id), outcome=outcome.value)
        return outcome
