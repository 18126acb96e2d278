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

Why a lease on the rows instead of a lock held across the lookup: a row lock held during an HTTP call would make a
user's retry queue behind the provider (and fail at ``lock_timeout``) and pin a pooled connection per hold. Instead
one short transaction takes a batch with ``FOR UPDATE SKIP LOCKED`` (two rounds that ever overlap split the work,
like the sweeper's) and moves each hold's ``paying_since`` to now, so no reconciler takes it again for a grace
period; the lookup runs outside any transaction; the outcome is written by conditional updates
(app/services/hold_ledger.py). Every transaction is one of the app's units of work, with the same ``lock_timeout``
and ``statement_timeout`` as a request's: a round blocked behind a user's row lock gives up instead of pinning a
connection. The loop is the app's one periodic-job runner (app/background.py). See notes/fault_tolerance.md,
"Reconciling unknown outcomes".

Why one reconciler at a time (``LeasedReconciler``): every worker of every instance runs the loop, and each round
asks the provider, which rate-limits us; N reconcilers asking at once spend N times the quota for the same
answers. A round runs only under the Redis lease ``payment-reconciler`` (app/cache/lease.py), and every write it
makes is fenced with the lease's token (app/db/fences.py), so a reconciler paused past its lease cannot write after
the one that replaced it. Without Redis the round is skipped (fail-closed): a round postponed costs a stuck hold
a few more seconds, while reconcilers without a lease would all ask the provider at once. See notes/redis.md, "A
lease with fencing tokens".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

import structlog

from app.cache.lease import HeldLease, LeaseUnavailableError, RedisLease
from app.db.fences import Fence, FencedOutError, newest_token
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
RECONCILER_LEASE = "payment-reconciler"  # the Redis lease and its lease_fence row


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
        self._uows = uows
        self._payments = payments
        self._ledger = SqlHoldLedger(uows)
        self._attempts = PaymentAttempts(self._ledger, payments)
        self._grace = timedelta(seconds=grace_s)
        self._batch = batch
        self._metrics = metrics

    async def reconcile_once(self, held: HeldLease | None = None) -> Counter[Reconciled]:
        """One bounded batch: lease it, ask about each hold, stop at the first question the provider leaves open.

        A provider that does not answer one lookup will not answer the next either; the holds not asked about
        keep their lease and are asked about one grace period later. Under ``held``, every write is fenced with its
        token (``FencedOutError`` once a newer holder has written) and no hold is asked about once it is lost."""
        attempts, ledger = self._attempts, self._ledger
        if held is not None:
            ledger = SqlHoldLedger(self._uows, Fence(held.name, held.token))
            attempts = PaymentAttempts(ledger, self._payments)
        outcomes: Counter[Reconciled] = Counter()
        for hold in await ledger.lease_due(grace=self._grace, batch=self._batch):
            if held is not None and held.lost:
                break
            try:
                outcome = await attempts.settle(hold)
            except PaymentProviderUnavailableError:
                outcomes[self._observed(hold, Reconciled.UNKNOWN)] += 1
                break
            outcomes[self._observed(hold, outcome)] += 1
        return outcomes

    async def newest_token(self, lease_name: str) -> int:
        """The newest fencing token PostgreSQL has seen for ``lease_name``: the floor of the next grant."""
        async with self._uows() as uow:
            return await newest_token(uow.session, lease_name)

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


class Round(StrEnum):
    RAN = "ran"  # under the lease, to the end of its batch (or the provider's first silence)
    BUSY = "busy"  # another reconciler holds the lease
    REDIS_DOWN = "redis-down"  # the lease could not be asked for: skipped (fail-closed)
    FENCED = "fenced"  # a newer holder had written: this one's write was refused, the round ended


@dataclass(frozen=True)
class RoundReport:
    round: Round
    token: int | None = None  # the fencing token the round ran under
    settled: Counter[Reconciled] = field(default_factory=Counter)


class LeasedReconciler:
    """The periodic job's ``run_once``: one ``PaymentReconciler`` round, only under ``lease``."""

    def __init__(self, reconciler: PaymentReconciler, lease: RedisLease, metrics: ReconcilerMetrics) -> None:
        self._reconciler = reconciler
        self._lease = lease
        self._metrics = metrics

    async def run_round(self) -> RoundReport:
        report = await self._round()
        self._metrics.round(report.round.value)
        return report

    async def _round(self) -> RoundReport:
        floor = await self._reconciler.newest_token(self._lease.name)
        try:
            async with self._lease.holding(floor=floor) as held:
                if held is None:
                    return RoundReport(Round.BUSY)
                try:
                    settled = await self._reconciler.reconcile_once(held)
                except FencedOutError:
                    log.warning("payment_reconcile_fenced", lease=held.name, token=held.token)
                    return RoundReport(Round.FENCED, held.token)
                return RoundReport(Round.RAN, held.token, settled)
        except LeaseUnavailableError as error:
            log.warning("payment_reconcile_skipped", reason=Round.REDIS_DOWN.value, error=str(error))
            return RoundReport(Round.REDIS_DOWN)
