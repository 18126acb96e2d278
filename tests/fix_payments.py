"""Fixtures for the tests that pay: the payment-provider simulator, reset around each test, and app workers whose
payments breaker is closed, with no failures counted, when the test starts. A pytest plugin, listed in
tests/conftest.py.

Why a fixture for the breaker: the app's workers share one payments breaker through Redis (app/resilience/
shared_circuit.py), and a test that trips it (on purpose, or by failing charges) leaves it open for its reset window
(2 s in tests) after the test ends, or leaves failures short of ``fail_max`` in its count; the next test that books
would then see fail-fast 503s it did not cause. ``closed_breakers`` reads what every worker publishes at the app's
own /metrics (``circuit_breaker_state``, the worst live worker's, and ``circuit_breaker_failures`` per worker, each
refreshed from Redis at least once a second) and returns at once when all say closed with no failures. Otherwise it
books throwaway holds: once the window is over, one of them is the trial that closes the shared circuit, and a
successful charge on a closed circuit resets its count. The bookings go to the app's port on new connections, so a
worker on its local fallback (Redis down) is reached too. See notes/redis.md, "One breaker for all workers", and
notes/fault_tolerance.md, "Circuit breaker".
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from stack.native.stack import NativeStack
from tests.api_users import ApiUser, new_user
from tests.bookings import book, held
from tests.conftest import TEST_APP_SETTINGS
from tests.polling import wait_for
from tests.probes import http

CLOSED = 0.0  # circuit_breaker_state: 0 closed, 1 half-open, 2 open


def payments_breaker_samples(stack: NativeStack, metric: str) -> list[Sample]:
    """The payments breaker's samples of ``metric`` at the app's /metrics (per worker ``pid`` where the metric is)."""
    exposition = http("GET", f"{stack.app.url}/metrics")[2].decode()
    for family in text_string_to_metric_families(exposition):
        if family.name == metric:
            return [sample for sample in family.samples if sample.labels["breaker"] == "payments"]
    raise AssertionError(f"no {metric} at the app's /metrics")


def payments_breaker_state(stack: NativeStack) -> float:
    """The payments breaker of the worst live app worker, as the app's /metrics says (each worker sets 0 at start)."""
    return max(sample.value for sample in payments_breaker_samples(stack, "circuit_breaker_state"))


def payments_breaker_clear(stack: NativeStack) -> bool:
    """Every worker sees the payments breaker closed with no failures counted."""
    failures = payments_breaker_samples(stack, "circuit_breaker_failures")
    return payments_breaker_state(stack) == CLOSED and all(sample.value == 0 for sample in failures)


@pytest.fixture
def simulator(stack: NativeStack) -> Iterator[str]:
    """The simulator's control URL, reset before and after each test so programmed faults never leak."""
    url = stack.payments.direct_url
    assert http("POST", f"{url}/_sim/reset")[0] == 204
    yield url
    http("POST", f"{url}/_sim/reset")


class TrialBookings:
    """Throwaway bookings, one at a time: each a new connection to the app's port, accepted by whichever worker."""

    def __init__(self, stack: NativeStack) -> None:
        self.stack = stack
        self._users: tuple[ApiUser, ApiUser] | None = None
        self._hold_id: str | None = None

    def book_one(self) -> None:
        """An open worker refuses at once and the hold stays active for the next try; a booked hold is replaced."""
        if self._users is None:
            self._users = (
                new_user(self.stack, organizer=True, label="trial-organizer"),
                new_user(self.stack, label="trial-buyer"),
            )
        organizer, buyer = self._users
        if self._hold_id is None:
            self._hold_id = held(self.stack, organizer, buyer, seats=1)["id"]
        # Direct, on a new connection each time: Nginx keeps its upstream connections alive, so its trials could all
        # land on the worker that is already closed while the open one never sees one.
        if book(self.stack, buyer, self._hold_id, direct=True)[0] == 201:
            self._hold_id = None


@pytest.fixture
def closed_breakers(stack: NativeStack, simulator: str) -> None:
    """The payments breaker is closed with no failures counted, as every app worker sees it, when the test starts
    (the simulator answering normally)."""
    trials = TrialBookings(stack)

    def clear_or_one_more_trial() -> bool:
        if payments_breaker_clear(stack):
            return True
        trials.book_one()
        return False

    reset_window_s = float(TEST_APP_SETTINGS["REFSTACK_PAYMENTS_BREAKER_RESET_S"])
    wait_for(
        clear_or_one_more_trial,
        timeout_s=reset_window_s + 10,
        what="the payments breaker closed with no failures in every worker's view (the app's /metrics)",
    )
