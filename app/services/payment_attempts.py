"""``PaymentAttempts``: the one owner of paying for a hold — claim it, charge the provider, then record the booking
or give the hold back — for the booking request and the ``PaymentReconciler`` alike.

Why three short steps instead of one long transaction: a transaction held open across an HTTP call to a flaky
provider holds row locks for seconds and pins a pooled connection per request in flight; under a flash sale the
pool runs dry. Instead the claim moves the hold ``active → paying`` in one conditional statement (the sweeper never
touches ``paying`` holds), the charge runs outside any transaction with the provider idempotency key
``hold-<id>-<card>`` (every retry of every request for this hold and card is one charge at most; another card after
a decline is another charge), and the outcome is written in a third transaction, with the messages it owes
(``booking.confirmed``; from the reconciler also ``payment.settled``) appended to the outbox in that same
transaction (app/services/hold_ledger.py, notes/rabbitmq.md, "The outbox and its relay").

What each outcome leads to is the pure rule in app/domain/reconciliation.py: charged → record the booking;
nothing charged for sure (declined, the breaker refused before sending, the provider refused the request) → give
the hold back; unknown (requests sent, no usable answer) → the hold stays ``paying``, and a retry with the same card
or the reconciler (which looks the charge up by its key) settles it.

Why protocols for the ledger and the provider: the decisions above are tested in milliseconds with in-memory fakes
(tests/unit/test_payment_attempts.py), while the SQL behind ``HoldLedger`` (app/services/hold_ledger.py) is proved
against the real primary. The payments client's own exceptions stop here: callers see this module's errors, whose
reasons are enums. See notes/fault_tolerance.md, "Idempotency keys" and "Reconciling unknown outcomes", and
notes/postgres.md, "Contention".
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

import structlog

from app.domain.reconciliation import ChargeFound, ChargeOutcome, Settlement, after_charge, settle
from app.payments.outcomes import ChargeResult, PaymentRequestRejected, PaymentUnavailable
from app.payments.wire import ProviderCharge

CURRENCY = "EUR"
log = structlog.get_logger(__name__)


class NotBookable(StrEnum):
    NOT_FOUND = "not-found"  # no hold with this id is the caller's
    EXPIRED = "expired"  # it expired or was released
    BOOKED = "booked"  # it is booked already (perhaps by a concurrent retry, or the reconciler)
    PAYMENT_UNSETTLED = "payment-unsettled"  # another card's charge for it has an unknown outcome
    EVENT_CANCELLED = "event-cancelled"  # its event was cancelled before the claim: no charge for it


class HoldNotBookableError(Exception):
    def __init__(self, reason: NotBookable) -> None:
        super().__init__(reason.value)
        self.reason = reason


class PaymentDeclinedError(Exception):
    """The card was declined; the hold is the user's again."""

    def __init__(self, decline_code: str | None) -> None:
        super().__init__(decline_code or "declined")
        self.decline_code = decline_code


class PaymentProviderUnavailableError(Exception):
    """The provider could not be asked, or did not answer usably; ``outcome_unknown``: money may have moved."""

    def __init__(self, *, outcome_unknown: bool, retry_after_s: int) -> None:
        super().__init__("charge outcome unknown" if outcome_unknown else "nothing charged")
        self.outcome_unknown = outcome_unknown
        self.retry_after_s = retry_after_s


class PaymentProviderRefusedError(Exception):
    """The provider refused the request itself (our bug, or a reused key); nothing was charged."""


@dataclass(frozen=True)
class BookingRecord:
    id: uuid.UUID
    event_id: uuid.UUID
    seat_ids: tuple[uuid.UUID, ...]
    status: str
    amount_cents: int
    created_at: datetime


@dataclass(frozen=True)
class ClaimedHold:
    event_id: uuid.UUID
    amount_cents: int


@dataclass(frozen=True)
class PayingHold:
    """A stuck hold as the reconciler leased it; ``leased_at`` is the ``paying_since`` it now carries."""

    id: uuid.UUID
    user_id: uuid.UUID
    event_id: uuid.UUID
    payment_key: str
    leased_at: datetime


class Reconciled(StrEnum):
    BOOKED = "booked"  # the provider had charged: the booking is recorded
    RELEASED = "released"  # the provider had not: the hold is the user's again (or the sweeper's, if expired)
    UNKNOWN = "unknown"  # no usable answer: the hold stays ``paying`` for the next round
    SUPERSEDED = "superseded"  # the hold moved on while we asked (the user's retry booked or re-claimed it)


class HoldLedger(Protocol):
    """The holds' side of a payment attempt, each method one short transaction of its own."""

    async def claim(
        self, *, user_id: uuid.UUID, hold_id: uuid.UUID, payment_key: str, now: datetime
    ) -> ClaimedHold: ...

    async def give_back(self, hold_id: uuid.UUID, *, leased_at: datetime | None = None) -> bool: ...

    async def record(
        self,
        *,
        user_id: uuid.UUID,
        hold_id: uuid.UUID,
        claimed: ClaimedHold,
        payment_id: str,
        reconciled: bool = False,
    ) -> BookingRecord | None: ...


class PaymentGateway(Protocol):
    """What a payment attempt needs of the provider's client (app/payments/client.py ``PaymentsClient``)."""

    async def charge(
        self, *, amount_cents: int, currency: str, card_token: str, idempotency_key: str, description: str | None
    ) -> ChargeResult: ...

    async def find_charge(self, idempotency_key: str) -> ProviderCharge | None: ...


def provider_key(hold_id: uuid.UUID, card_token: str) -> str:
    """One logical charge = one hold paid with one card: retries reuse it, another card is another charge."""
    card = hashlib.sha256(card_token.encode()).hexdigest()[:16]
    return f"hold-{hold_id}-{card}"


@dataclass(frozen=True)
class _Charged:
    outcome: ChargeOutcome
    result: ChargeResult | None = None
    retry_after_s: int = 1


class PaymentAttempts:
    def __init__(self, ledger: HoldLedger, payments: PaymentGateway) -> None:
        self._ledger = ledger
        self._payments = payments

    async def pay(self, *, user_id: uuid.UUID, hold_id: uuid.UUID, card_token: str, now: datetime) -> BookingRecord:
        """Claim, charge, and record the booking; or give the hold back and say why; or leave it ``paying``."""
        key = provider_key(hold_id, card_token)
        claimed = await self._ledger.claim(user_id=user_id, hold_id=hold_id, payment_key=key, now=now)
        charged = await self._charge(claimed, hold_id=hold_id, card_token=card_token, key=key)
        settlement = after_charge(charged.outcome)
        if settlement is Settlement.BOOK and charged.result is not None:
            record = await self._ledger.record(
                user_id=user_id, hold_id=hold_id, claimed=claimed, payment_id=charged.result.charge_id
            )
            if record is None:  # a concurrent request for the same hold recorded the (same) charge first
                raise HoldNotBookableError(NotBookable.BOOKED)
            return record
        if settlement is Settlement.GIVE_BACK:
            await self._ledger.give_back(hold_id)
        raise _error_of(charged)

    async def _charge(self, claimed: ClaimedHold, *, hold_id: uuid.UUID, card_token: str, key: str) -> _Charged:
        try:
            result = await self._payments.charge(
                amount_cents=claimed.amount_cents,
                currency=CURRENCY,
                card_token=card_token,
                idempotency_key=key,
                description=f"refstack booking of hold {hold_id}",
            )
        except PaymentUnavailable as error:
            sent = ChargeOutcome.UNKNOWN if error.outcome_unknown else ChargeOutcome.NOT_SENT
            return _Charged(sent, retry_after_s=error.retry_after_s)
        except PaymentRequestRejected:
            return _Charged(ChargeOutcome.REFUSED)
        return _Charged(ChargeOutcome.SUCCEEDED if result.succeeded else ChargeOutcome.DECLINED, result)

    async def settle(self, hold: PayingHold) -> Reconciled:
        """Ask the provider about a leased hold's key and act on the answer (the reconciler's one step).

        Raises ``PaymentProviderUnavailableError`` when the provider gives no usable answer: the hold keeps its
        lease and is asked about again one grace period later."""
        try:
            charge = await self._payments.find_charge(hold.payment_key)
        except (PaymentUnavailable, PaymentRequestRejected) as error:
            log.warning("payment_reconcile_unanswered", hold_id=str(hold.id), reason=str(error))
            raise PaymentProviderUnavailableError(outcome_unknown=True, retry_after_s=1) from None
        return await self.apply(hold, charge)

    async def apply(self, hold: PayingHold, charge: ProviderCharge | None) -> Reconciled:
        """Act on the provider's answer for a leased ``hold`` (None: no charge under its key)."""
        found = None if charge is None else ChargeFound(status=charge.status, currency=charge.currency)
        settlement = settle(found, currency=CURRENCY)
        if settlement is Settlement.BOOK and charge is not None:
            # the amount the provider charged is what the claim computed and sent
            claimed = ClaimedHold(event_id=hold.event_id, amount_cents=charge.amount_cents)
            record = await self._ledger.record(
                user_id=hold.user_id, hold_id=hold.id, claimed=claimed, payment_id=charge.id, reconciled=True
            )
            return Reconciled.SUPERSEDED if record is None else Reconciled.BOOKED
        if settlement is Settlement.GIVE_BACK:
            given_back = await self._ledger.give_back(hold.id, leased_at=hold.leased_at)
            return Reconciled.RELEASED if given_back else Reconciled.SUPERSEDED
        log.error("payment_reconcile_mismatch", hold_id=str(hold.id), charge_id=None if charge is None else charge.id)
        return Reconciled.UNKNOWN


def _error_of(charged: _Charged) -> Exception:
    """What the caller is told when the charge did not end in a booking."""
    if charged.outcome is ChargeOutcome.DECLINED and charged.result is not None:
        return PaymentDeclinedError(charged.result.decline_code)
    if charged.outcome is ChargeOutcome.REFUSED:
        return PaymentProviderRefusedError("the payment provider refused the request")
    return PaymentProviderUnavailableError(
        outcome_unknown=charged.outcome is ChargeOutcome.UNKNOWN, retry_after_s=charged.retry_after_s
    )
