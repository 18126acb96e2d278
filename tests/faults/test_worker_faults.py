"""The worker broken for real: SIGKILLed in the middle of a message (redelivered, applied once), killed by the same
message again and again (parked by the broker's ``x-delivery-limit``), and stopped with SIGTERM while it holds
messages (the one in hand is finished and acknowledged, the prefetched ones go back to the queue, none is applied
twice). "In the middle" is made real by freezing PostgreSQL: the worker has taken the message (its ``consumed``
counter moved) and waits for the database in place, holding the delivery (app/worker/delivery.py); a waiting
message is never sent to the retry tiers, which the tests also check. See notes/rabbitmq.md, "Acks, nacks and a
graceful stop".
"""

from __future__ import annotations

import signal
import uuid
from functools import partial

import pytest

from app.messaging.envelope import Envelope
from stack.native.stack import NativeStack
from tests.api_users import new_user
from tests.fault_injector import FaultInjector
from tests.messages import booking_confirmed, count_rows, drain, publish, worker_counts, worker_log
from tests.polling import wait_for, wait_for_async
from tests.probes import http

pytestmark = pytest.mark.fault
LIMIT = 3  # REFSTACK_WORKER_DELIVERY_LIMIT of the test stack (tests/conftest.py)
OUTCOMES = ("message_applied", "message_duplicate", "message_retried", "message_parked")


def consumed(stack: NativeStack) -> float:
    return worker_counts(stack, "notifications").get("consumed", 0.0)


def notified(stack: NativeStack, message_id: uuid.UUID) -> bool:
    return count_rows(stack, "notification", message_id) == 1


def ready(stack: NativeStack) -> bool:
    return http("GET", f"{stack.worker.url}/health/ready")[0] == 200


def events_of(stack: NativeStack, message: Envelope) -> list[tuple[str, bool | None]]:
    return [
        (line["event"], line.get("redelivered"))
        for line in worker_log(stack, message.id)
        if line.get("consumer") == "notifications" and line["event"] in OUTCOMES
    ]


async def warmed(stack: NativeStack) -> str:
    """A buyer, and a message applied first, so the worker holds a pooled connection (a frozen server then holds
    the next transaction up to the client's command timeout instead of failing its connect at once)."""
    wait_for(partial(ready, stack), timeout_s=30, what="worker ready")
    buyer = new_user(stack, label="faulted")
    first = booking_confirmed(buyer.id)
    await publish(stack, first)
    wait_for(partial(notified, stack, first.id), timeout_s=15, what="warm-up applied")
    return buyer.id


async def test_a_worker_killed_mid_message_gets_it_again_and_applies_it_once(
    stack: NativeStack, fault: FaultInjector
) -> None:
    message = booking_confirmed(await warmed(stack))
    before = consumed(stack)
    fault("postgres", "pause")
    await publish(stack, message)
    wait_for(lambda: consumed(stack) > before, timeout_s=15, what="the worker took the message")
    fault.kill("worker")
    fault("postgres", "resume")
    fault("worker", "start")
    wait_for(partial(notified, stack, message.id), timeout_s=20, what="the redelivered message applied")
    assert events_of(stack, message) == [("message_applied", True)]  # the broker's redelivered flag: a second try
    assert count_rows(stack, "notification", message.id) == 1
    assert count_rows(stack, "inbox", message.id) == 2  # notifications and webhooks, once each


async def test_a_message_the_worker_dies_on_every_time_is_parked_after_the_delivery_limit(
    stack: NativeStack, fault: FaultInjector
) -> None:
    message = booking_confirmed(await warmed(stack))
    await drain(stack, "notifications.parking")
    before = consumed(stack)
    fault("postgres", "pause")
    await publish(stack, message)
    deliveries, parked = 0, list[str | None]()
    for _ in range(LIMIT + 3):  # bounded: the limit plus room to see that it is exact

        async def delivered_again_or_parked(before: float = before) -> bool:
            parked.extend(m.message_id for m in await drain(stack, "notifications.parking"))
            return bool(parked) or consumed(stack) > before

        await wait_for_async(delivered_again_or_parked, timeout_s=20, what="delivered again, or parked")
        if parked:
            break
        deliveries += 1
        fault.kill("worker")
        fault("worker", "start")
        before = 0.0  # a new process counts from zero (and may have taken the message before this line)
    fault("postgres", "resume")
    assert (deliveries, parked) == (LIMIT + 1, [str(message.id)])
    assert events_of(stack, message) == []  # parked by the broker, never by the worker's tiers
    assert count_rows(stack, "notification", message.id) == 0


async def test_sigterm_finishes_the_message_in_hand_and_returns_the_prefetched_ones(
    stack: NativeStack, fault: FaultInjector
) -> None:
    buyer = await warmed(stack)
    in_hand, *waiting = [booking_confirmed(buyer) for _ in range(3)]
    before = consumed(stack)
    fault("postgres", "pause")
    await publish(stack, in_hand, *waiting)
    wait_for(lambda: consumed(stack) > before, timeout_s=15, what="the first taken (the others wait prefetched)")
    stack.worker.process.send(signal.SIGTERM)
    wait_for(lambda: "worker_stopping" in stack.worker.log_path.read_text(), timeout_s=10, what="stop begun")
    fault("postgres", "resume")
    wait_for(lambda: not stack.worker.process.alive(), timeout_s=15, what="the worker exits")
    assert stack.worker.process.exit_code() == 0
    assert events_of(stack, in_hand) == [("message_applied", False)]  # finished and acked before the exit
    assert [count_rows(stack, "notification", m.id) for m in waiting] == [0, 0]
    fault("worker", "start")
    for message in waiting:
        wait_for(partial(notified, stack, message.id), timeout_s=20, what="a returned message applied")
        assert events_of(stack, message) == [("message_applied", True)]
    assert events_of(stack, in_hand) == [("message_applied", False)]  # never delivered again


def worker_ready_status(stack: NativeStack) -> int:
    return http("GET", f"{stack.worker.url}/health/ready")[0]


def test_the_worker_is_not_ready_while_its_broker_is_frozen(stack: NativeStack, fault: FaultInjector) -> None:
    """A frozen broker keeps the worker's socket open; readiness asks it for a round trip, so it says 503."""
    wait_for(lambda: worker_ready_status(stack) == 200, timeout_s=30, what="worker ready")
    fault("rabbitmq", "pause")
    wait_for(lambda: worker_ready_status(stack) == 503, timeout_s=10, what="worker not ready")
    assert http("GET", f"{stack.worker.url}/health/live")[0] == 200  # alive: nothing to restart
    fault("rabbitmq", "resume")
    wait_for(lambda: worker_ready_status(stack) == 200, timeout_s=30, what="worker ready again")
