"""One payments breaker for all workers: its state in one Redis hash, each worker's local breaker when Redis is gone.

First in process (two breakers over one real Redis stand for two workers; the guarded call is a coroutine that
fails or succeeds on cue, since the breaker is what is under test), then with the real 2-worker app of the session
stack: failures seen by one worker open the circuit for the other, and with Redis cut each worker falls back to its
own breaker and says so at /metrics. Which worker serves a connection is read from the kernel
(bench/worker_connections.py), so no test relies on how the kernel spreads connections over workers.
See notes/redis.md, "One breaker for all workers".
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from app.cache.client import open_redis
from app.resilience.breaker import AsyncCircuitBreaker, CircuitOpen
from app.resilience.shared_circuit import RedisCircuitState
from app.settings import Settings
from bench.worker_connections import WorkerConnection, two_workers
from stack.native.stack import NativeStack
from tests.api_users import ApiUser, new_user
from tests.bookings import held, program
from tests.conftest import TEST_APP_SETTINGS
from tests.fault_injector import FaultInjector
from tests.fix_payments import payments_breaker_samples
from tests.polling import wait_for, wait_for_async
from tests.probes import http

FAIL_MAX = 3
RESET_S = 0.5
APP_FAIL_MAX = int(TEST_APP_SETTINGS["REFSTACK_PAYMENTS_BREAKER_FAIL_MAX"])
PRODUCTION_BOUND_S = Settings.model_fields["breaker_exchange_timeout_s"].default
SHARING_BOUND_S = float(TEST_APP_SETTINGS["REFSTACK_BREAKER_EXCHANGE_TIMEOUT_S"])  # as the test stack's app runs


class ProviderDown(Exception):
    """What the stand-in dependency raises when told to fail."""


class StandIn:
    """The guarded call: counts how often it ran, and fails while ``failing``."""

    def __init__(self) -> None:
        self.calls = 0
        self.failing = False

    async def __call__(self) -> str:
        self.calls += 1
        if self.failing:
            raise ProviderDown
        return "ok"


@pytest.fixture
async def redis(stack: NativeStack) -> AsyncIterator[Redis]:
    client = open_redis(Settings(redis_url=stack.redis.direct_url))
    yield client
    await client.aclose()


def worker_breaker(redis: Redis | None, name: str, bound_s: float = SHARING_BOUND_S) -> AsyncCircuitBreaker:
    """One worker's breaker for circuit ``name`` (shared through ``redis``; its own without it), each exchange
    bounded by ``bound_s``."""
    return AsyncCircuitBreaker(
        name=name,
        fail_max=FAIL_MAX,
        reset_timeout_s=RESET_S,
        not_failures=[],
        shared=RedisCircuitState(redis, name, timeout_s=bound_s) if redis is not None else None,
    )


async def trip(breaker: AsyncCircuitBreaker, provider: StandIn) -> None:
    provider.failing = True
    for _ in range(FAIL_MAX):
        with pytest.raises(ProviderDown):
            await breaker.call(provider)
    provider.failing = False


async def test_failures_seen_by_one_worker_open_the_circuit_for_another_that_saw_none(redis: Redis) -> None:
    name = f"test-{uuid.uuid4()}"
    worker_a, worker_b = worker_breaker(redis, name), worker_breaker(redis, name)
    provider = StandIn()
    await trip(worker_a, provider)

    with pytest.raises(CircuitOpen):
        await worker_b.call(provider)
    assert provider.calls == FAIL_MAX  # B refused without calling
    assert (worker_b.shared, worker_b.state, worker_b.fail_counter, worker_b.rejected_calls) == (True, "open", 3, 1)
    assert worker_a.transitions.counts == {("closed", "open"): 1}
    assert worker_b.transitions.counts == {}  # B adopted the state; the transition was A's, counted once
    stored = await redis_hash(redis, name)
    assert (stored[b"state"], stored[b"failures"]) == (b"open", b"3")


async def test_one_workers_trial_closes_the_circuit_for_every_worker(redis: Redis) -> None:
    name = f"test-{uuid.uuid4()}"
    worker_a, worker_b = worker_breaker(redis, name), worker_breaker(redis, name)
    provider = StandIn()
    await trip(worker_a, provider)

    async def trial_due() -> bool:
        await worker_b.refresh()
        return worker_b.seconds_until_trial() == 0

    await wait_for_async(trial_due, timeout_s=RESET_S + 5, what="the shared reset window")
    assert await worker_b.call(provider) == "ok"  # B's trial
    assert worker_b.transitions.counts == {("open", "half-open"): 1, ("half-open", "closed"): 1}
    assert await worker_a.call(provider) == "ok"  # A sees it closed: admitted, no trial of its own
    assert (worker_a.state, worker_a.fail_counter) == ("closed", 0)
    assert worker_a.transitions.counts == {("closed", "open"): 1}
    assert provider.calls == FAIL_MAX + 2


async def test_a_failed_shared_trial_reopens_the_circuit_for_another_window_everywhere(redis: Redis) -> None:
    name = f"test-{uuid.uuid4()}"
    worker_a, worker_b = worker_breaker(redis, name), worker_breaker(redis, name)
    provider = StandIn()
    await trip(worker_a, provider)

    async def trial_due() -> bool:
        return worker_a.seconds_until_trial() == 0

    await wait_for_async(trial_due, timeout_s=RESET_S + 5, what="the reset window")
    provider.failing = True
    with pytest.raises(ProviderDown):
        await worker_a.call(provider)  # A's trial fails
    with pytest.raises(CircuitOpen) as refused:
        await worker_b.call(provider)
    assert refused.value.retry_after_s > 0
    assert provider.calls == FAIL_MAX + 1
    assert worker_a.transitions.counts[("half-open", "open")] == 1


@pytest.fixture
async def deaf_redis() -> AsyncIterator[str]:
    """A Redis URL whose server accepts connections and never answers (a frozen Redis, as clients see it)."""
    held: list[asyncio.StreamWriter] = []

    async def accept_and_ignore(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept_and_ignore, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"redis://127.0.0.1:{port}/0"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_worker_whose_redis_does_not_answer_keeps_its_own_local_breaker(deaf_redis: str) -> None:
    frozen = open_redis(Settings(redis_url=deaf_redis))
    try:
        name = f"test-{uuid.uuid4()}"
        worker_a, worker_b = (
            worker_breaker(frozen, name, PRODUCTION_BOUND_S),
            worker_breaker(frozen, name, PRODUCTION_BOUND_S),
        )
        provider = StandIn()
        await trip(worker_a, provider)
        assert (worker_a.shared, worker_a.state) == (False, "open")
        assert await worker_b.call(provider) == "ok"  # B's own breaker never saw A's failures
        assert (worker_b.shared, worker_b.state) == (False, "closed")
        with pytest.raises(CircuitOpen):
            await worker_a.call(provider)  # A's local breaker still refuses
        assert provider.calls == FAIL_MAX + 1
    finally:
        await frozen.aclose()


@pytest.mark.fault
async def test_with_redis_cut_each_breaker_is_local_and_after_heal_the_shared_state_wins(
    stack: NativeStack, fault: FaultInjector
) -> None:
    proxied = open_redis(Settings(redis_url=stack.redis.url))  # through the fault proxy, as the app reaches it
    try:
        name = f"test-{uuid.uuid4()}"
        worker_a, worker_b = worker_breaker(proxied, name), worker_breaker(proxied, name)
        provider = StandIn()
        fault("redis", "cut")
        await trip(worker_a, provider)
        assert (worker_a.shared, worker_a.state) == (False, "open")
        assert await worker_b.call(provider) == "ok"  # B's own breaker never saw A's failures
        assert (worker_b.shared, worker_b.state) == (False, "closed")
        fault("redis", "heal")

        async def shared_again() -> bool:
            await worker_a.refresh()
            return worker_a.shared

        await wait_for_async(shared_again, timeout_s=10, what="worker A back on the shared state")
        # What A counted alone was never sent: the shared hash (never written) says closed, and it wins.
        assert (worker_a.state, worker_a.fail_counter) == ("closed", 0)
        assert await redis_hash(proxied, name) == {}
    finally:
        await proxied.aclose()


async def redis_hash(redis: Redis, name: str) -> dict[bytes | str, bytes | str]:
    stored: dict[bytes | str, bytes | str] = await redis.hgetall(f"refstack:breaker:{name}")
    return stored


async def test_without_redis_the_breaker_is_the_processs_own_and_sends_nothing() -> None:
    breaker = worker_breaker(None, "local")
    provider = StandIn()
    await trip(breaker, provider)
    assert (breaker.shared, breaker.state, breaker.transitions.counts) == (False, "open", {("closed", "open"): 1})


# --- the real 2-worker app ---------------------------------------------------------------------------------------


@pytest.fixture
def connections(stack: NativeStack) -> Iterator[list[WorkerConnection]]:
    with two_workers(stack.app.url) as pinned:
        yield pinned


def book(connection: WorkerConnection, user: ApiUser, hold_id: str) -> tuple[int, dict[str, str], Any]:
    """POST /api/v1/bookings on this worker's connection."""
    return connection.request("POST", "/api/v1/bookings", headers=user.headers, body={"hold_id": hold_id})


def provider_requests(simulator: str) -> int:
    return int(json.loads(http("GET", f"{simulator}/_sim/stats")[2])["requests_total"])


def per_worker(stack: NativeStack, metric: str) -> dict[int, float]:
    """A liveall gauge of the payments breaker at /metrics, by worker PID."""
    return {int(s.labels["pid"]): s.value for s in payments_breaker_samples(stack, metric)}


def on_the_shared_breaker(stack: NativeStack) -> None:
    """Wait until every worker's view comes from Redis: a worker whose Redis links an earlier test's fault reset is on
    its local breaker until its next refresh reaches Redis again (a precondition, not what these tests prove)."""
    wait_for(
        lambda: set(per_worker(stack, "circuit_breaker_shared").values()) == {1.0},
        timeout_s=10,
        what="every worker on the shared breaker (circuit_breaker_shared 1)",
    )


def shared_hash(stack: NativeStack) -> dict[str, str]:
    """The payments circuit as Redis holds it for every worker."""
    with SyncRedis.from_url(stack.redis.direct_url, decode_responses=True) as client:
        fields: dict[str, str] = client.hgetall("refstack:breaker:payments")
    return fields


def opened_total(stack: NativeStack) -> float:
    exposition = http("GET", f"{stack.app.url}/metrics")[2].decode()
    found = re.search(
        r'^circuit_breaker_transitions_total\{breaker="payments",from_state="closed",to_state="open"\} (\S+)$',
        exposition,
        re.MULTILINE,
    )
    return float(found.group(1)) if found else 0.0


@pytest.mark.usefixtures("closed_breakers")
def test_failures_through_one_worker_open_the_breaker_for_the_other_worker(
    stack: NativeStack, simulator: str, connections: list[WorkerConnection]
) -> None:
    worker_a, worker_b = connections
    on_the_shared_breaker(stack)
    organizer, buyer = new_user(stack, organizer=True, label="organizer"), new_user(stack, label="buyer")
    hold = held(stack, organizer, buyer, seats=1)
    opened_before = opened_total(stack)
    program(simulator, error_rate=1.0)
    for _ in range(APP_FAIL_MAX):
        assert book(worker_a, buyer, hold["id"])[0] == 503  # retries ran out: one failure each, all on worker A
    reached_provider = provider_requests(simulator)
    stored = shared_hash(stack)
    assert (stored.get("state"), stored.get("failures")) == ("open", str(APP_FAIL_MAX)), stored  # A's trip, shared
    # B's copy of the circuit reaches A's count within one refresh (1 s). Waiting for it keeps the check below on
    # what B decides from the shared state, whatever B's own exchange before the call meets.
    wait_for(
        lambda: per_worker(stack, "circuit_breaker_failures").get(worker_b.pid) == APP_FAIL_MAX,
        timeout_s=5,
        what="worker B's view of the circuit carrying worker A's failures",
    )

    status, headers, problem = book(worker_b, buyer, hold["id"])
    assert status == 503, problem
    assert "nothing was charged" in str(problem["detail"])  # refused before sending
    assert int(headers["retry-after"]) >= 1
    assert provider_requests(simulator) == reached_provider  # worker B, which saw no failure, sent nothing
    assert opened_total(stack) == opened_before + 1  # one circuit, opened once, by worker A
    assert per_worker(stack, "circuit_breaker_shared")[worker_b.pid] == 1.0
    assert per_worker(stack, "circuit_breaker_failures")[worker_b.pid] == APP_FAIL_MAX  # B's view: A's count


@pytest.mark.fault
def test_with_redis_cut_every_worker_says_at_metrics_that_its_breaker_is_local(
    stack: NativeStack, fault: FaultInjector
) -> None:
    """Only /metrics here, whatever the booking route does without Redis (a rate limit that fails closed stops every
    booking before it charges); the local breakers' behaviour is proved in process above."""
    on_the_shared_breaker(stack)
    fault("redis", "cut")
    wait_for(
        lambda: set(per_worker(stack, "circuit_breaker_shared").values()) == {0.0},
        timeout_s=10,
        what="every worker on its local breaker (circuit_breaker_shared 0)",
    )
    fault("redis", "heal")
    on_the_shared_breaker(stack)
