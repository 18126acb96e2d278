"""The payments client against the real payment-provider simulator process: retries, idempotency, the breaker.

Each module run starts its own simulator on a free port (independent of the session stack) and resets it before
every test; each test builds a client with small timeouts and a fresh breaker. Counts come from the simulator's
``/_sim/stats`` and ``/_sim/charges``, so "exactly one charge" and "no request reached the provider" are read
from the provider's side. See notes/fault_tolerance.md, "Retries", "Idempotency keys" and "Circuit breaker".
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.payments.client import PaymentsClient, open_payments_client
from app.payments.outcomes import ChargeResult, PaymentRequestRejected, PaymentUnavailable
from app.settings import Settings
from tests.polling import wait_for, wait_for_async

REPO_ROOT = Path(__file__).resolve().parents[2]
CARD = "tok_visa"
DECLINED_CARD = "tok_chargeback_king"
# Small on purpose: a hang costs 0.3 s, a backoff at most 50 ms, the breaker trips after 3 failed calls for 1 s.
TIMEOUT_S = 0.3
MAX_ATTEMPTS = 3
DEADLINE_S = 2.0
FAIL_MAX = 3
RESET_S = 1.0
SMALL: dict[str, Any] = {
    "payments_timeout_s": TIMEOUT_S,
    "payments_max_attempts": MAX_ATTEMPTS,
    "payments_backoff_base_s": 0.01,
    "payments_backoff_max_s": 0.05,
    "payments_deadline_s": DEADLINE_S,
    "payments_breaker_fail_max": FAIL_MAX,
    "payments_breaker_reset_s": RESET_S,
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout_s: float) -> None:
    with httpx.Client(base_url=url, timeout=0.5) as probe:

        def healthy() -> bool:
            assert process.poll() is None, f"simulator exited; log:\n{log_path.read_text()}"
            try:
                return probe.get("/health").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, timeout_s=timeout_s, what=f"the simulator at {url} to answer /health (log: {log_path})")


@pytest.fixture(scope="module")
def simulator_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A payment-provider simulator process of our own, stopped by PID at the end of the module."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("payments") / "simulator.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "simulators.payments", "--port", str(port), "--log-level", "warning"],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(url, process, log_path, timeout_s=15.0)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
async def sim(simulator_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The simulator's control API, reset before each test (which also ends hangs left by the previous one)."""
    async with httpx.AsyncClient(base_url=simulator_url, timeout=5.0) as control:
        assert (await control.post("/_sim/reset")).status_code == 204
        yield control


@pytest.fixture
async def make_client(simulator_url: str) -> AsyncIterator[Callable[..., PaymentsClient]]:
    """Builds clients with ``SMALL`` settings (overridable per test) and closes them afterwards."""
    opened: list[PaymentsClient] = []

    def build(url: str = simulator_url, **overrides: Any) -> PaymentsClient:
        client = open_payments_client(Settings(payments_url=url, **{**SMALL, **overrides}))
        opened.append(client)
        return client

    yield build
    for client in opened:
        await client.aclose()


@pytest.fixture
def payments(make_client: Callable[..., PaymentsClient]) -> PaymentsClient:
    return make_client()


async def program(sim: httpx.AsyncClient, **behaviour: Any) -> None:
    response = await sim.put("/_sim/behaviour", json=behaviour)
    assert response.status_code == 200, response.text


async def stats(sim: httpx.AsyncClient) -> dict[str, int]:
    counters: dict[str, int] = (await sim.get("/_sim/stats")).json()
    return counters


async def charges_for(sim: httpx.AsyncClient, key: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await sim.get("/_sim/charges")).json()["items"]
    return [charge for charge in items if charge["idempotency_key"] == key]


def new_key() -> str:
    return f"test-{uuid.uuid4()}"


async def trip_the_breaker(payments: PaymentsClient, sim: httpx.AsyncClient) -> None:
    """Every attempt fails 503 until ``FAIL_MAX`` calls have run out of retries: the circuit is open."""
    await program(sim, error_rate=1.0)
    for _ in range(FAIL_MAX):
        with pytest.raises(PaymentUnavailable):
            await charge(payments, new_key())
    assert payments.breaker.state == "open"


async def wait_for_the_trial(payments: PaymentsClient) -> None:
    """Deadline-bound poll until the reset window has passed and the next call would be the trial."""

    async def trial_due() -> bool:
        return payments.breaker.seconds_until_trial() == 0

    await wait_for_async(trial_due, timeout_s=RESET_S + 1, what="the breaker's reset window")


async def charge(payments: PaymentsClient, key: str, card: str = CARD, amount_cents: int = 4200) -> ChargeResult:
    return await payments.charge(
        amount_cents=amount_cents, currency="eur", card_token=card, idempotency_key=key, description="2 seats"
    )


async def test_a_charge_succeeds_in_one_attempt(payments: PaymentsClient, sim: httpx.AsyncClient) -> None:
    key = new_key()
    result = await charge(payments, key)

    assert (result.succeeded, result.attempts, result.replayed) == (True, 1, False)
    [recorded] = await charges_for(sim, key)
    assert (recorded["id"], recorded["amount_cents"], recorded["currency"]) == (result.charge_id, 4200, "EUR")


async def test_charging_again_with_the_same_key_replays_the_first_charge(
    payments: PaymentsClient, sim: httpx.AsyncClient
) -> None:
    key = new_key()
    first = await charge(payments, key)
    again = await charge(payments, key)

    assert (again.charge_id, again.replayed) == (first.charge_id, True)
    assert len(await charges_for(sim, key)) == 1


async def test_a_decline_is_a_result_after_one_attempt_and_no_breaker_failure(
    payments: PaymentsClient, sim: httpx.AsyncClient
) -> None:
    await program(sim, declined_cards=[DECLINED_CARD])
    result = await charge(payments, new_key(), card=DECLINED_CARD)

    assert (result.status, result.decline_code, result.attempts) == ("declined", "card_declined", 1)
    assert (await stats(sim))["requests_total"] == 1
    assert (payments.breaker.state, payments.breaker.fail_counter) == ("closed", 0)


@pytest.mark.fault
async def test_two_503s_then_success_on_attempt_three_with_exactly_one_charge(
    payments: PaymentsClient, sim: httpx.AsyncClient
) -> None:
    await program(sim, fail_next=2)
    key = new_key()
    result = await charge(payments, key)

    assert (result.succeeded, result.attempts) == (True, 3)
    counters = await stats(sim)
    assert (counters["requests_total"], counters["errors_injected"], counters["charges_created"]) == (3, 2, 1)
    assert [c["id"] for c in await charges_for(sim, key)] == [result.charge_id]


@pytest.mark.fault
async def test_a_timed_out_charge_is_retried_with_the_same_key_and_replayed_not_charged_twice(
    payments: PaymentsClient, sim: httpx.AsyncClient
) -> None:
    # The first request hangs 0.45 s (the client gives up at 0.3 s) and still charges; then the provider heals. The
    # retry starts at 0.30-0.35 s and waits for the key's lock until the hung request has charged at 0.45 s, then
    # replays it: 150 ms inside its own 0.3 s. (A 0.6 s hang made the retry's timeout and the charge coincide.)
    await program(sim, timeout_rate=1.0, hang_s=0.45)
    key = new_key()
    charging = asyncio.create_task(charge(payments, key))

    async def first_request_hangs() -> bool:
        return (await stats(sim))["timeouts_injected"] == 1

    await wait_for_async(first_request_hangs, timeout_s=5, what="the first charge request to hang")
    await program(sim)
    result = await charging

    assert (result.succeeded, result.attempts, result.replayed) == (True, 2, True)
    assert [c["id"] for c in await charges_for(sim, key)] == [result.charge_id]


@pytest.mark.fault
async def test_a_provider_that_always_hangs_gives_up_with_at_most_one_charge(
    payments: PaymentsClient, sim: httpx.AsyncClient
) -> None:
    await program(sim, timeout_rate=1.0, hang_s=0.5)
    key = new_key()
    began = time.monotonic()
    with pytest.raises(PaymentUnavailable) as unavailable:
        await charge(payments, key)
    elapsed = time.monotonic() - began

    assert unavailable.value.attempts == MAX_ATTEMPTS
    assert "Timeout" in unavailable.value.reason
    assert MAX_ATTEMPTS * TIMEOUT_S <= elapsed < DEADLINE_S

    async def every_hang_answered() -> bool:  # the first hang charges, the two retries get replays
        return (await stats(sim))["replays"] == 2

    await wait_for_async(every_hang_answered, timeout_s=5, what="the three hanging requests to finish at the provider")
    assert len(await charges_for(sim, key)) == 1


@pytest.mark.fault
async def test_errors_on_every_attempt_give_up_after_max_attempts_within_the_deadline(
    payments: PaymentsClient, sim: httpx.AsyncClient
) -> None:
    await program(sim, error_rate=1.0)
    began = time.monotonic()
    with pytest.raises(PaymentUnavailable) as unavailable:
        await charge(payments, new_key())

    assert time.monotonic() - began < DEADLINE_S
    assert (unavailable.value.attempts, unavailable.value.retry_after_s) == (MAX_ATTEMPTS, 1)
    counters = await stats(sim)
    assert (counters["requests_total"], counters["charges_created"]) == (MAX_ATTEMPTS, 0)


@pytest.mark.fault
async def test_the_deadline_ends_the_retries_before_max_attempts(
    make_client: Callable[..., PaymentsClient], sim: httpx.AsyncClient
) -> None:
    payments = make_client(payments_max_attempts=10, payments_deadline_s=1.0)
    await program(sim, timeout_rate=1.0, hang_s=30.0)
    began = time.monotonic()
    with pytest.raises(PaymentUnavailable) as unavailable:
        await charge(payments, new_key())
    elapsed = time.monotonic() - began

    # 0.3 s per attempt: three whole attempts, and a fourth clipped to what is left of the 1 s deadline.
    assert unavailable.value.attempts == 4
    assert 1.0 <= elapsed < 1.3
    assert (await stats(sim))["requests_total"] == 4


@pytest.mark.fault
async def test_the_breaker_opens_fails_fast_without_the_network_then_a_trial_closes_it(
    payments: PaymentsClient, sim: httpx.AsyncClient
) -> None:
    breaker = payments.breaker
    await trip_the_breaker(payments, sim)
    assert breaker.transitions.counts == {("closed", "open"): 1}
    requests_before = (await stats(sim))["requests_total"]
    assert requests_before == FAIL_MAX * MAX_ATTEMPTS  # a failure is a call whose retries ran out, not an attempt

    began = time.monotonic()
    with pytest.raises(PaymentUnavailable) as refused:
        await charge(payments, new_key())
    assert time.monotonic() - began < 0.05
    assert (refused.value.attempts, refused.value.reason, refused.value.retry_after_s) == (0, "circuit open", 1)
    assert (await stats(sim))["requests_total"] == requests_before
    assert breaker.rejected_calls == 1

    assert (await sim.post("/_sim/reset")).status_code == 204
    await wait_for_the_trial(payments)
    result = await charge(payments, new_key())

    assert (result.succeeded, result.attempts) == (True, 1)
    assert breaker.state == "closed"
    assert breaker.transitions.counts == {("closed", "open"): 1, ("open", "half-open"): 1, ("half-open", "closed"): 1}


@pytest.mark.fault
async def test_a_failed_trial_reopens_the_circuit_for_another_window(
    payments: PaymentsClient, sim: httpx.AsyncClient
) -> None:
    breaker = payments.breaker
    await trip_the_breaker(payments, sim)
    await wait_for_the_trial(payments)
    with pytest.raises(PaymentUnavailable) as trial:
        await charge(payments, new_key())

    assert trial.value.attempts == MAX_ATTEMPTS
    assert breaker.state == "open"
    assert breaker.seconds_until_trial() > 0.5
    assert breaker.transitions.into("open") == 2
    assert breaker.transitions.counts[("half-open", "open")] == 1


@pytest.mark.fault
async def test_only_one_trial_call_reaches_the_provider_while_the_others_fail_fast(
    payments: PaymentsClient, sim: httpx.AsyncClient
) -> None:
    await trip_the_breaker(payments, sim)
    await program(sim, latency_ms=200)  # healthy again, but the trial takes a while
    await wait_for_the_trial(payments)
    requests_before = (await stats(sim))["requests_total"]
    outcomes = await asyncio.gather(*(charge(payments, new_key()) for _ in range(5)), return_exceptions=True)

    succeeded = [o for o in outcomes if isinstance(o, ChargeResult)]
    refused = [o for o in outcomes if isinstance(o, PaymentUnavailable)]
    assert (len(succeeded), len(refused)) == (1, 4)
    assert all(o.attempts == 0 for o in refused)
    assert (await stats(sim))["requests_total"] == requests_before + 1
    assert payments.breaker.state == "closed"


async def test_a_request_the_provider_rejects_is_an_error_but_not_a_breaker_failure(
    payments: PaymentsClient, sim: httpx.AsyncClient
) -> None:
    key = new_key()
    await charge(payments, key, amount_cents=4200)
    with pytest.raises(PaymentRequestRejected) as rejected:
        await charge(payments, key, amount_cents=9900)  # same key, different body: the provider says 409

    assert rejected.value.status == 409
    assert (await stats(sim))["requests_total"] == 2  # a 4xx is never retried
    assert (payments.breaker.state, payments.breaker.fail_counter) == ("closed", 0)


# A FAKE of a broken provider: the simulator always answers well-formed JSON, so garbage needs its own server.
BROKEN_REPLIES = {
    "not-json": (201, b"<html>Bad Gateway</html>"),
    "not-a-charge": (201, b'{"id": "ch_1"}'),
    "another-amount": (201, b'{"id": "ch_1", "status": "succeeded", "amount_cents": 1, "currency": "EUR"}'),
    "status-disagrees": (201, b'{"id": "ch_1", "status": "declined", "amount_cents": 4200, "currency": "EUR"}'),
    "unexpected-200": (200, b'{"id": "ch_1", "status": "succeeded", "amount_cents": 4200, "currency": "EUR"}'),
}


class BrokenProvider:
    """Answers every request with one fixed status and body, and counts the requests."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status, self.body, self.requests = status, body, 0

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")),
            0,
        )
        await reader.readexactly(length)
        self.requests += 1
        writer.write(
            b"HTTP/1.1 %d Whatever\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
            % (self.status, len(self.body))
            + self.body
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize("reply", BROKEN_REPLIES, ids=str)
async def test_a_malformed_reply_is_unavailable_after_one_attempt_not_a_crash(
    make_client: Callable[..., PaymentsClient], reply: str
) -> None:
    provider = BrokenProvider(*BROKEN_REPLIES[reply])
    server = await asyncio.start_server(provider.answer, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        payments = make_client(f"http://127.0.0.1:{port}")
        with pytest.raises(PaymentUnavailable) as unavailable:
            await charge(payments, new_key())

    assert unavailable.value.attempts == 1  # a replay would repeat the same garbage
    assert unavailable.value.reason.startswith("MalformedReply")
    assert provider.requests == 1
    assert payments.breaker.fail_counter == 1


async def test_a_charge_is_found_by_its_key_and_an_unused_key_finds_none(
    payments: PaymentsClient, sim: httpx.AsyncClient
) -> None:
    key = new_key()
    made = await charge(payments, key)

    found = await payments.find_charge(key)

    assert found is not None
    assert (found.id, found.status, found.amount_cents, found.currency) == (made.charge_id, "succeeded", 4200, "EUR")
    assert await payments.find_charge(new_key()) is None
    assert (await stats(sim))["lookups"] == 2
    assert len(await charges_for(sim, key)) == 1  # looking up never charges


async def test_a_404_that_is_not_the_providers_no_such_charge_is_no_answer(
    make_client: Callable[..., PaymentsClient], simulator_url: str, sim: httpx.AsyncClient
) -> None:
    """A misrouted lookup (here: a wrong base path, answered by the framework's plain 404) must not read as
    "not charged", or the reconciler would give back seats somebody paid for."""
    payments = make_client(f"{simulator_url}/elsewhere")
    with pytest.raises(PaymentUnavailable) as unavailable:
        await payments.find_charge(new_key())

    assert unavailable.value.reason.startswith("MalformedReply")
    assert unavailable.value.attempts == 1


async def test_a_lookup_is_retried_and_bounded_like_a_charge_but_never_touches_the_breaker(
    make_client: Callable[..., PaymentsClient], sim: httpx.AsyncClient
) -> None:
    with socket.socket() as probe:  # a port nobody listens on: every attempt is refused at once
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    down = make_client(f"http://127.0.0.1:{closed}")
    started = time.monotonic()
    with pytest.raises(PaymentUnavailable) as unavailable:
        await down.find_charge(new_key())
    assert unavailable.value.attempts == MAX_ATTEMPTS
    assert time.monotonic() - started < DEADLINE_S + 0.5
    assert down.breaker.fail_counter == 0

    payments = make_client()
    await trip_the_breaker(payments, sim)
    assert await payments.find_charge(new_key()) is None  # an open circuit refuses charges, not lookups
    assert payments.breaker.state == "open"
