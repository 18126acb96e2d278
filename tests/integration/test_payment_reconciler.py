"""The PaymentReconciler against the session stack's primary and the payment-provider simulator (the one fake).

Each test leaves a hold ``paying`` with an unknown outcome the way a booking does (``book_hold`` against the real
simulator, programmed to garble its reply after charging or to fail every attempt without charging), then stands
in for the passing of time by moving the hold's ``paying_since`` back past the grace period, and runs a reconciler
with its own engine and payments client. Outcomes are read where they happen: the ledger of charges, the rows, and
``GET /me/bookings`` through Nginx. Other tests may leave ``paying`` holds behind, so assertions are about this
test's holds. The two race tests interleave a reconciler and the user's retry deterministically: the retry's
charge is slowed at the provider, and the reconciler acts once the retry's claim has committed.
See notes/fault_tolerance.md, "Reconciling unknown outcomes".
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from structlog.testing import capture_logs

from app.background import PeriodicJob, running
from app.observability.metrics import build_job_metrics, build_reconciler_metrics
from app.payments.client import PaymentsClient, open_payments_client
from app.services.bookings import book_hold
from app.services.payment_attempts import PayingHold, PaymentProviderUnavailableError, Reconciled, provider_key
from app.services.reconciler import PaymentReconciler
from app.services.unit_of_work import TransactionTimeouts, UnitOfWorkFactory
from app.settings import Settings
from stack.native.stack import NativeStack
from tests.api_users import ApiUser, call, new_user
from tests.bookings import charges, held, program, sql
from tests.fault_injector import FaultInjector
from tests.polling import wait_for, wait_for_async
from tests.probes import http

pytestmark = pytest.mark.usefixtures("closed_breakers")  # the app's; the reconciler's own client has its own

CARD = "tok_demo"  # the API's default card, so a retry through the API uses the same provider key
GRACE_S = 10.0
TIMEOUTS = TransactionTimeouts(lock_ms=500, statement_ms=4000)  # as the test stack's app runs them
PAST_GRACE = "interval '20 seconds'"  # past this reconciler's grace, well inside the app's own (60 s by default)


@pytest.fixture(scope="module")
def organizer(stack: NativeStack) -> ApiUser:
    return new_user(stack, organizer=True, label="reconcile-organizer")


@pytest.fixture
def buyer(stack: NativeStack) -> ApiUser:
    return new_user(stack, label="reconcile-buyer")


@pytest.fixture
async def payments(stack: NativeStack) -> AsyncIterator[PaymentsClient]:
    """Through the fault proxy (so a test can cut it), with the test stack's payment timeouts and its own breaker."""
    settings = Settings(
        payments_url=stack.payments.url,
        payments_timeout_s=0.5,
        payments_max_attempts=3,
        payments_backoff_base_s=0.05,
        payments_backoff_max_s=0.2,
        payments_deadline_s=2.0,
    )
    client = open_payments_client(settings)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def reconciler(engine: AsyncEngine, payments: PaymentsClient) -> PaymentReconciler:
    metrics = build_reconciler_metrics(CollectorRegistry())
    return PaymentReconciler(
        UnitOfWorkFactory(engine, TIMEOUTS), payments, grace_s=GRACE_S, batch=1000, metrics=metrics
    )


async def unknown_outcome(engine: AsyncEngine, payments: PaymentsClient, buyer: ApiUser, hold_id: str) -> None:
    """Pay for the hold as the API does and see the charge end with an unknown outcome (the hold stays paying)."""
    with pytest.raises(PaymentProviderUnavailableError) as unavailable:
        await book_hold(
            UnitOfWorkFactory(engine, TIMEOUTS),
            payments,
            user_id=uuid.UUID(buyer.id),
            hold_id=uuid.UUID(hold_id),
            card_token=CARD,
            now=datetime.now(UTC),
        )
    assert unavailable.value.outcome_unknown


def stuck(stack: NativeStack, hold_id: str) -> None:
    """Time passes: the payment attempt started longer ago than the reconciler's grace period."""
    sql(stack, f"update hold set paying_since = now() - {PAST_GRACE} where id = '{hold_id}'")


def hold_row(stack: NativeStack, hold_id: str) -> str:
    return sql(stack, f"select status, payment_key is not null from hold where id = '{hold_id}'")


def seat_statuses(stack: NativeStack, hold: dict[str, Any]) -> list[str]:
    seat_list = ",".join(f"'{s}'" for s in hold["seat_ids"])
    return sql(stack, f"select status from seat where id in ({seat_list}) order by id").split()


def bookings_of(stack: NativeStack, hold_id: str) -> int:
    return int(sql(stack, f"select count(*) from booking where hold_id = '{hold_id}'"))


def mine(holds: list[PayingHold], hold_id: str) -> PayingHold:
    return next(hold for hold in holds if str(hold.id) == hold_id)


async def reconciled(reconciler: PaymentReconciler, *hold_ids: str) -> dict[str, str]:
    """One round, and the outcome it reported for each of these holds (read from its ``payment_reconciled`` lines).

    Why not the round's counts: the round also settles any hold another test left ``paying`` past this grace
    period, so only the outcomes of this test's own holds are exact."""
    with capture_logs() as logs:
        outcomes = await reconciler.reconcile_once()
    reported = {entry["hold_id"]: entry["outcome"] for entry in logs if entry["event"] == "payment_reconciled"}
    assert sum(outcomes.values()) == len(reported)  # one line per hold the round settled
    return {hold_id: reported[hold_id] for hold_id in hold_ids if hold_id in reported}


async def retry_claimed(engine: AsyncEngine, hold: PayingHold) -> bool:
    """The user's retry has re-claimed the hold: it is ``paying`` under a newer attempt than the lease."""
    async with engine.connect() as conn:
        since = (
            await conn.execute(
                text("select paying_since from hold where id = :id and status = 'paying'"), {"id": hold.id}
            )
        ).scalar()
    return since is not None and since > hold.leased_at


async def test_a_claim_records_the_provider_key_and_when_the_attempt_started_never_the_card(
    stack: NativeStack,
    organizer: ApiUser,
    buyer: ApiUser,
    simulator: str,
    engine: AsyncEngine,
    payments: PaymentsClient,
) -> None:
    hold = held(stack, organizer, buyer)
    program(simulator, garble="not_json")
    await unknown_outcome(engine, payments, buyer, hold["id"])
    key, age_s = sql(
        stack, f"select payment_key, extract(epoch from now() - paying_since) from hold where id = '{hold['id']}'"
    ).split("|")
    assert key == provider_key(uuid.UUID(hold["id"]), CARD)
    assert CARD not in key
    assert 0 <= float(age_s) < 10


async def test_the_provider_did_charge_so_the_reconciler_books_the_hold(
    stack: NativeStack,
    organizer: ApiUser,
    buyer: ApiUser,
    simulator: str,
    engine: AsyncEngine,
    payments: PaymentsClient,
    reconciler: PaymentReconciler,
) -> None:
    hold = held(stack, organizer, buyer)
    program(simulator, garble="not_json")  # the charge is made, its reply is garbage: outcome unknown
    await unknown_outcome(engine, payments, buyer, hold["id"])
    program(simulator)
    [charge] = charges(simulator, hold["id"])
    await reconciler.reconcile_once()
    assert hold_row(stack, hold["id"]) == "paying|t"  # inside the grace period: not asked about, not touched

    stuck(stack, hold["id"])

    assert await reconciled(reconciler, hold["id"]) == {hold["id"]: Reconciled.BOOKED}
    assert hold_row(stack, hold["id"]) == "booked|t"
    assert seat_statuses(stack, hold) == ["sold", "sold"]
    assert sql(stack, f"select payment_id, amount_cents from booking where hold_id = '{hold['id']}'") == (
        f"{charge['id']}|5000"
    )
    assert charges(simulator, hold["id"]) == [charge]  # asked, never charged again

    def listed() -> list[dict[str, Any]]:
        page = call(stack, "GET", "/api/v1/me/bookings", user=buyer)[2]
        return list(page["items"])

    [booking] = wait_for(listed, timeout_s=10, what="the reconciled booking in GET /me/bookings")
    assert sorted(booking["seat_ids"]) == sorted(hold["seat_ids"])
    assert (booking["status"], booking["amount_cents"]) == ("confirmed", 5000)
    await reconciler.reconcile_once()
    assert bookings_of(stack, hold["id"]) == 1  # a booked hold is never taken again


async def test_the_provider_did_not_charge_so_the_hold_is_given_back_and_expired_seats_return_to_the_sale(
    stack: NativeStack,
    organizer: ApiUser,
    buyer: ApiUser,
    simulator: str,
    engine: AsyncEngine,
    payments: PaymentsClient,
    reconciler: PaymentReconciler,
) -> None:
    lasting, expired = held(stack, organizer, buyer), held(stack, organizer, buyer)
    for hold in (lasting, expired):
        program(simulator, fail_next=3)  # every attempt is sent and fails: unknown to us, nothing charged
        await unknown_outcome(engine, payments, buyer, hold["id"])
        stuck(stack, hold["id"])
    sql(stack, f"update hold set expires_at = now() - interval '1 second' where id = '{expired['id']}'")

    assert await reconciled(reconciler, lasting["id"], expired["id"]) == {
        lasting["id"]: Reconciled.RELEASED,
        expired["id"]: Reconciled.RELEASED,
    }
    assert hold_row(stack, lasting["id"]) == "active|f"  # the user's again until it expires, like after a decline
    wait_for(
        lambda: hold_row(stack, expired["id"]) == "expired|f",
        timeout_s=10,
        what="the app's sweeper to expire the given-back hold",
    )
    assert seat_statuses(stack, expired) == ["available", "available"]
    assert [bookings_of(stack, h["id"]) for h in (lasting, expired)] == [0, 0]
    assert charges(simulator, lasting["id"]) == charges(simulator, expired["id"]) == []
    # a hold given back while it lasts can still be paid for (the app's breakers start closed; this test's failed
    # charges went through the test's own client)
    assert call(stack, "POST", "/api/v1/bookings", user=buyer, body={"hold_id": lasting["id"]})[0] == 201


@pytest.mark.fault
async def test_a_provider_down_during_reconciliation_changes_nothing_and_the_next_round_settles_it(
    stack: NativeStack,
    organizer: ApiUser,
    buyer: ApiUser,
    simulator: str,
    engine: AsyncEngine,
    payments: PaymentsClient,
    reconciler: PaymentReconciler,
    fault: FaultInjector,
) -> None:
    hold = held(stack, organizer, buyer)
    program(simulator, garble="not_json")
    await unknown_outcome(engine, payments, buyer, hold["id"])
    program(simulator)
    stuck(stack, hold["id"])
    fault("payments", "cut")

    assert await reconciler.reconcile_once() == {Reconciled.UNKNOWN: 1}  # the round stops at the first silence

    assert hold_row(stack, hold["id"]) == "paying|t"
    assert seat_statuses(stack, hold) == ["held", "held"]
    assert bookings_of(stack, hold["id"]) == 0
    fault("payments", "heal")
    stuck(stack, hold["id"])  # the lease put it off for a grace period; let that pass too

    assert await reconciled(reconciler, hold["id"]) == {hold["id"]: Reconciled.BOOKED}
    assert hold_row(stack, hold["id"]) == "booked|t"
    assert bookings_of(stack, hold["id"]) == 1
    assert len(charges(simulator, hold["id"])) == 1


@asynccontextmanager
async def retry_racing_a_lease(
    stack: NativeStack, buyer: ApiUser, engine: AsyncEngine, leased: PayingHold
) -> AsyncIterator[asyncio.Task[httpx.Response]]:
    """The user's retry of the leased hold, in flight through Nginx: its claim has committed, its (slowed) charge has
    not returned. The caller lets the reconciler act, then awaits the retry's answer."""
    async with httpx.AsyncClient(base_url=stack.nginx.url, headers=buyer.headers, timeout=15) as client:
        retry = asyncio.create_task(client.post("/api/v1/bookings", json={"hold_id": str(leased.id)}))
        await wait_for_async(lambda: retry_claimed(engine, leased), timeout_s=5, what="the retry's claim")
        yield retry


async def leased_after_unknown_outcome(
    stack: NativeStack,
    simulator: str,
    engine: AsyncEngine,
    payments: PaymentsClient,
    reconciler: PaymentReconciler,
    hold: dict[str, Any],
    buyer: ApiUser,
    **failure: object,
) -> PayingHold:
    """A hold left ``paying`` by ``failure`` at the provider, past its grace and leased by the reconciler; the
    provider then answers slowly, so a retry started now is still being charged when the reconciler acts."""
    program(simulator, **failure)
    await unknown_outcome(engine, payments, buyer, hold["id"])
    program(simulator, latency_ms=400)
    stuck(stack, hold["id"])
    return mine(await reconciler.take_due(), hold["id"])


async def test_a_retry_racing_the_reconciler_that_books_ends_in_one_booking_and_one_charge(
    stack: NativeStack,
    organizer: ApiUser,
    buyer: ApiUser,
    simulator: str,
    engine: AsyncEngine,
    payments: PaymentsClient,
    reconciler: PaymentReconciler,
) -> None:
    hold = held(stack, organizer, buyer)
    leased = await leased_after_unknown_outcome(
        stack, simulator, engine, payments, reconciler, hold, buyer, garble="not_json"
    )
    async with retry_racing_a_lease(stack, buyer, engine, leased) as retry:
        found = await payments.find_charge(leased.payment_key)
        assert await reconciler.apply(leased, found) is Reconciled.BOOKED
        assert not retry.done()
        answer = await retry

    assert answer.status_code == 409, answer.text  # the hold was booked, on the same charge, under it
    assert answer.json()["type"].endswith("/hold-already-booked")
    assert bookings_of(stack, hold["id"]) == 1
    assert len(charges(simulator, hold["id"])) == 1


async def test_a_retry_racing_the_reconciler_that_gives_back_is_not_undone(
    stack: NativeStack,
    organizer: ApiUser,
    buyer: ApiUser,
    simulator: str,
    engine: AsyncEngine,
    payments: PaymentsClient,
    reconciler: PaymentReconciler,
) -> None:
    """The reconciler saw no charge; meanwhile the user retried and is being charged. Giving the hold back now
    would make the retry's booking fail after the charge: money taken, no booking. The lease's ``paying_since``
    in the give-back's WHERE clause is what prevents it."""
    hold = held(stack, organizer, buyer)
    leased = await leased_after_unknown_outcome(
        stack, simulator, engine, payments, reconciler, hold, buyer, fail_next=3
    )
    assert await payments.find_charge(leased.payment_key) is None
    async with retry_racing_a_lease(stack, buyer, engine, leased) as retry:
        assert await reconciler.apply(leased, None) is Reconciled.SUPERSEDED
        assert not retry.done()
        assert hold_row(stack, hold["id"]) == "paying|t"
        answer = await retry

    assert answer.status_code == 201, answer.text
    assert bookings_of(stack, hold["id"]) == 1
    assert len(charges(simulator, hold["id"])) == 1


async def test_the_apps_own_reconciler_settles_a_stuck_hold_and_counts_it(
    stack: NativeStack,
    organizer: ApiUser,
    buyer: ApiUser,
    simulator: str,
    engine: AsyncEngine,
    payments: PaymentsClient,
) -> None:
    """The lifespan wiring: the app's workers reconcile (default grace 60 s, every 5 s) without being asked."""
    hold = held(stack, organizer, buyer)
    program(simulator, garble="not_json")
    await unknown_outcome(engine, payments, buyer, hold["id"])
    program(simulator)
    sql(stack, f"update hold set paying_since = now() - interval '1 day' where id = '{hold['id']}'")

    wait_for(lambda: hold_row(stack, hold["id"]) == "booked|t", timeout_s=30, what="the app to reconcile the hold")
    assert bookings_of(stack, hold["id"]) == 1
    assert len(charges(simulator, hold["id"])) == 1
    metrics = http("GET", f"{stack.app.url}/metrics")[2].decode()
    assert 'payment_reconciliations_total{outcome="booked"}' in metrics


async def test_the_reconcile_loop_outlives_failures_and_stops_when_cancelled(payments: PaymentsClient) -> None:
    with socket.socket() as probe:  # a port nobody listens on: every round fails at once with "refused"
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = create_async_engine(f"postgresql+asyncpg://app:app@127.0.0.1:{port}/refstack")
    metrics = build_reconciler_metrics(CollectorRegistry())
    reconciler = PaymentReconciler(
        UnitOfWorkFactory(engine, TIMEOUTS), payments, grace_s=GRACE_S, batch=10, metrics=metrics
    )
    try:
        with capture_logs() as logs:
            reconcile = PeriodicJob("payment-reconciler", 0.01, reconciler.reconcile_once)
            async with running(reconcile, build_job_metrics(CollectorRegistry())) as task:

                async def failed_thrice() -> bool:
                    return [(entry["event"], entry.get("job")) for entry in logs].count(
                        ("background_job_failed", "payment-reconciler")
                    ) >= 3

                await wait_for_async(failed_thrice, timeout_s=5, what="three failed rounds")
                assert not task.done()
        assert task.cancelled()
    finally:
        await engine.dispose()
