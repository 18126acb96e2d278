"""What each charge outcome leads to, for the booking and for the reconciler, decided by ``PaymentAttempts`` and
tested in milliseconds against an in-memory ledger and a programmable provider.

``FakeHoldLedger`` and ``FakePayments`` are fakes, named as such: they stand in for the SQL of
app/services/hold_ledger.py (proved against the real primary by tests/integration/test_bookings_api.py,
test_payment_reconciler.py and test_status_moves.py) and for the payment provider's client (proved against the
simulator by tests/integration/test_payments_client.py). Here only the decisions are under test: which charge
outcome records a booking, which gives the hold back, which leaves it ``paying``, and what the caller is told.
See notes/fault_tolerance.md, "Idempotency keys" and "Reconciling unknown outcomes".
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from app.payments.outcomes import ChargeResult, PaymentRequestRejected, PaymentUnavailable
from app.payments.wire import ProviderCharge
from app.services.payment_attempts import (
    BookingRecord,
    ClaimedHold,
    HoldNotBookableError,
    NotBookable,
    PayingHold,
    PaymentAttempts,
    PaymentDeclinedError,
    PaymentProviderRefusedError,
    PaymentProviderUnavailableError,
    Reconciled,
    provider_key,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
USER = uuid.uuid4()
EVENT = uuid.uuid4()
PRICE = 4900


@dataclass
class FakeHold:
    status: str = "active"
    payment_key: str | None = None
    paying_since: datetime | None = None
    expires_at: datetime = NOW + timedelta(minutes=10)


@dataclass
class FakeHoldLedger:
    """A fake of ``SqlHoldLedger``: the same moves on a dict, one "transaction" per call."""

    holds: dict[uuid.UUID, FakeHold] = field(default_factory=dict)
    bookings: list[BookingRecord] = field(default_factory=list)
    record_loses_race: bool = False

    async def claim(self, *, user_id: uuid.UUID, hold_id: uuid.UUID, payment_key: str, now: datetime) -> ClaimedHold:
        hold = self.holds.get(hold_id)
        if hold is None:
            raise HoldNotBookableError(NotBookable.NOT_FOUND)
        active = hold.status == "active" and hold.expires_at > now
        same_charge = hold.status == "paying" and hold.payment_key in (None, payment_key)
        if not (active or same_charge):
            raise HoldNotBookableError(
                {"paying": NotBookable.PAYMENT_UNSETTLED, "booked": NotBookable.BOOKED}.get(
                    hold.status, NotBookable.EXPIRED
                )
            )
        hold.status, hold.payment_key, hold.paying_since = "paying", payment_key, now
        return ClaimedHold(event_id=EVENT, amount_cents=PRICE)

    async def give_back(self, hold_id: uuid.UUID, *, leased_at: datetime | None = None) -> bool:
        hold = self.holds[hold_id]
        if hold.status != "paying" or (leased_at is not None and hold.paying_since != leased_at):
            return False
        hold.status, hold.payment_key, hold.paying_since = "active", None, None
        return True

    async def record(
        self,
        *,
        user_id: uuid.UUID,
        hold_id: uuid.UUID,
        claimed: ClaimedHold,
        payment_id: str,
        reconciled: bool = False,
    ) -> BookingRecord | None:
        hold = self.holds[hold_id]
        if self.record_loses_race or hold.status != "paying":
            return None
        hold.status = "booked"
        booking = BookingRecord(uuid.uuid4(), claimed.event_id, (), "confirmed", claimed.amount_cents, NOW)
        self.bookings.append(booking)
        return booking


@dataclass
class FakePayments:
    """A fake of the payment provider's client, answering each call as programmed."""

    charge_answer: ChargeResult | Exception = field(
        default_factory=lambda: ChargeResult(status="succeeded", charge_id="ch_1", attempts=1)
    )
    lookup_answer: ProviderCharge | Exception | None = None
    charged_keys: list[str] = field(default_factory=list)

    async def charge(
        self, *, amount_cents: int, currency: str, card_token: str, idempotency_key: str, description: str | None
    ) -> ChargeResult:
        self.charged_keys.append(idempotency_key)
        if isinstance(self.charge_answer, Exception):
            raise self.charge_answer
        return self.charge_answer

    async def find_charge(self, idempotency_key: str) -> ProviderCharge | None:
        if isinstance(self.lookup_answer, Exception):
            raise self.lookup_answer
        return self.lookup_answer


def attempt(payments: FakePayments, hold: FakeHold | None = None) -> tuple[PaymentAttempts, FakeHoldLedger, uuid.UUID]:
    hold_id = uuid.uuid4()
    ledger = FakeHoldLedger(holds={hold_id: hold or FakeHold()})
    return PaymentAttempts(ledger, payments), ledger, hold_id


async def pay(attempts: PaymentAttempts, hold_id: uuid.UUID, card: str = "tok_visa") -> BookingRecord:
    return await attempts.pay(user_id=USER, hold_id=hold_id, card_token=card, now=NOW)


async def test_a_charge_that_succeeded_is_recorded_once_with_the_hold_and_card_key() -> None:
    payments = FakePayments()
    attempts, ledger, hold_id = attempt(payments)
    booking = await pay(attempts, hold_id)
    assert booking.amount_cents == PRICE
    assert ledger.holds[hold_id].status == "booked"
    assert len(ledger.bookings) == 1
    assert payments.charged_keys == [provider_key(hold_id, "tok_visa")]


async def test_a_declined_card_gives_the_hold_back_and_says_why() -> None:
    payments = FakePayments(ChargeResult(status="declined", charge_id="ch_2", attempts=1, decline_code="no_funds"))
    attempts, ledger, hold_id = attempt(payments)
    with pytest.raises(PaymentDeclinedError) as declined:
        await pay(attempts, hold_id)
    assert declined.value.decline_code == "no_funds"
    assert ledger.holds[hold_id] == FakeHold()  # active again, no attempt recorded
    assert ledger.bookings == []


async def test_a_breaker_that_refused_before_sending_gives_the_hold_back_nothing_charged() -> None:
    attempts, ledger, hold_id = attempt(FakePayments(PaymentUnavailable(retry_after_s=7, attempts=0, reason="open")))
    with pytest.raises(PaymentProviderUnavailableError) as unavailable:
        await pay(attempts, hold_id)
    assert (unavailable.value.outcome_unknown, unavailable.value.retry_after_s) == (False, 7)
    assert ledger.holds[hold_id].status == "active"


async def test_an_unknown_outcome_keeps_the_hold_paying_under_its_key() -> None:
    attempts, ledger, hold_id = attempt(FakePayments(PaymentUnavailable(retry_after_s=1, attempts=3, reason="slow")))
    with pytest.raises(PaymentProviderUnavailableError) as unavailable:
        await pay(attempts, hold_id)
    assert unavailable.value.outcome_unknown
    assert ledger.holds[hold_id].status == "paying"
    assert ledger.holds[hold_id].payment_key == provider_key(hold_id, "tok_visa")
    with pytest.raises(HoldNotBookableError) as other_card:  # a second charge for one booking is refused
        await pay(attempts, hold_id, card="tok_other")
    assert other_card.value.reason is NotBookable.PAYMENT_UNSETTLED


async def test_a_request_the_provider_refuses_gives_the_hold_back() -> None:
    attempts, ledger, hold_id = attempt(FakePayments(PaymentRequestRejected(status=409, detail="key reused")))
    with pytest.raises(PaymentProviderRefusedError):
        await pay(attempts, hold_id)
    assert ledger.holds[hold_id].status == "active"


async def test_a_charge_recorded_first_by_a_concurrent_request_is_already_booked() -> None:
    attempts, ledger, hold_id = attempt(FakePayments())
    ledger.record_loses_race = True
    with pytest.raises(HoldNotBookableError) as booked:
        await pay(attempts, hold_id)
    assert booked.value.reason is NotBookable.BOOKED


@pytest.mark.parametrize(
    ("hold", "reason"),
    [
        (FakeHold(expires_at=NOW), NotBookable.EXPIRED),
        (FakeHold(status="booked"), NotBookable.BOOKED),
        (FakeHold(status="released"), NotBookable.EXPIRED),
    ],
)
async def test_a_hold_that_cannot_be_claimed_is_never_charged(hold: FakeHold, reason: NotBookable) -> None:
    payments = FakePayments()
    attempts, _, hold_id = attempt(payments, hold)
    with pytest.raises(HoldNotBookableError) as refused:
        await pay(attempts, hold_id)
    assert refused.value.reason is reason
    assert payments.charged_keys == []


def leased(hold_id: uuid.UUID, ledger: FakeHoldLedger) -> PayingHold:
    ledger.holds[hold_id] = FakeHold(status="paying", payment_key="hold-k", paying_since=NOW)
    return PayingHold(hold_id, USER, EVENT, "hold-k", leased_at=NOW)


def provider_charge(status: str, currency: str = "EUR") -> ProviderCharge:
    return ProviderCharge.model_validate({"id": "ch_9", "status": status, "amount_cents": 9800, "currency": currency})


@pytest.mark.parametrize(
    ("answer", "outcome", "status"),
    [
        (provider_charge("succeeded"), Reconciled.BOOKED, "booked"),
        (None, Reconciled.RELEASED, "active"),
        (provider_charge("declined"), Reconciled.RELEASED, "active"),
        (provider_charge("succeeded", currency="USD"), Reconciled.UNKNOWN, "paying"),
    ],
)
async def test_the_reconciler_acts_on_what_the_provider_found(
    answer: ProviderCharge | None, outcome: Reconciled, status: str
) -> None:
    attempts, ledger, hold_id = attempt(FakePayments(lookup_answer=answer))
    assert await attempts.settle(leased(hold_id, ledger)) is outcome
    assert ledger.holds[hold_id].status == status
    assert [b.amount_cents for b in ledger.bookings] == ([9800] if outcome is Reconciled.BOOKED else [])


async def test_the_reconciler_never_undoes_a_retry_that_reclaimed_the_hold_meanwhile() -> None:
    attempts, ledger, hold_id = attempt(FakePayments(lookup_answer=None))
    hold = leased(hold_id, ledger)
    ledger.holds[hold_id].paying_since = NOW + timedelta(seconds=5)  # the user's retry claimed it again
    assert await attempts.settle(hold) is Reconciled.SUPERSEDED
    assert ledger.holds[hold_id].status == "paying"


async def test_a_provider_that_does_not_answer_the_lookup_leaves_the_hold_for_the_next_round() -> None:
    lookup = PaymentUnavailable(retry_after_s=1, attempts=3, reason="timeout")
    attempts, ledger, hold_id = attempt(FakePayments(lookup_answer=lookup))
    with pytest.raises(PaymentProviderUnavailableError):
        await attempts.settle(leased(hold_id, ledger))
    assert ledger.holds[hold_id].status == "paying"
