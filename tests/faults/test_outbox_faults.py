"""The producer side under broker faults, on the stack's own RabbitMQ: bookings keep succeeding while the broker is
stopped, frozen, cut off or blocking publishers under a memory alarm; the backlog shows at ``/metrics``; once the
broker is back every row is published. And a relay killed between the broker's confirm and its mark leaves its row
unpublished: the next relay sends it again, a duplicate on the wire with the same message id.

Every count is exact: the rows written are the bookings' own (``hold.placed`` and ``booking.confirmed`` per hold).
See notes/rabbitmq.md, "The outbox and its relay" and "Flow control and alarms".
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stack.native.brokers import RABBIT_BIN
from stack.native.stack import NativeStack
from tests.api_users import ApiUser, call, event_body, new_user
from tests.bookings import book, held
from tests.fault_injector import FaultInjector
from tests.outbox_tap import Tap, metric, outbox_rows, tapping
from tests.polling import line_starting, wait_for, wait_for_async

pytestmark = [pytest.mark.fault, pytest.mark.usefixtures("closed_breakers")]
REPO = Path(__file__).resolve().parents[2]
BURST = 6


@pytest.fixture(scope="module")
def organizer(stack: NativeStack) -> ApiUser:
    return new_user(stack, organizer=True, label="outbox-fault-organizer")


@pytest.fixture(scope="module")
def buyer(stack: NativeStack) -> ApiUser:
    return new_user(stack, label="outbox-fault-buyer")


def holds_ready(stack: NativeStack, organizer: ApiUser, buyer: ApiUser) -> list[dict[str, Any]]:
    """Holds placed (and published) before the fault, so the burst's bookings are the only rows it writes."""
    made = [held(stack, organizer, buyer, seats=1) for _ in range(BURST)]
    wait_for(lambda: all_published(stack, made), timeout_s=20, what="the holds' hold.placed published")
    return made


def all_published(stack: NativeStack, holds: list[dict[str, Any]]) -> bool:
    return all(row.published for hold in holds for row in outbox_rows(stack, hold["id"]))


def booking_burst(stack: NativeStack, buyer: ApiUser, holds: list[dict[str, Any]]) -> list[int]:
    return [book(stack, buyer, hold["id"])[0] for hold in holds]


def rabbitmqctl(stack: NativeStack, *args: str) -> str:
    """rabbitmqctl against the stack's private node only (its own epmd port, home and cookie)."""
    broker = stack.rabbitmq
    done = subprocess.run(
        [str(RABBIT_BIN / "rabbitmqctl"), "-n", broker.node, *args],
        env=broker.environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


@pytest.fixture
def low_memory_watermark(stack: NativeStack) -> Iterator[None]:
    """A memory alarm on the private broker (its watermark below what it uses), always lifted afterwards."""
    rabbitmqctl(stack, "set_vm_memory_high_watermark", "absolute", "10MB")
    try:
        yield
    finally:
        rabbitmqctl(stack, "set_vm_memory_high_watermark", "0.4")


@pytest.mark.parametrize(
    ("verb", "undo"), [("stop", "start"), ("pause", "resume"), ("cut", "heal")], ids=["stopped", "paused", "cut"]
)
def test_bookings_succeed_while_the_broker_is_away_and_are_all_published_after(
    stack: NativeStack, fault: FaultInjector, organizer: ApiUser, buyer: ApiUser, verb: str, undo: str
) -> None:
    holds = holds_ready(stack, organizer, buyer)
    fault("rabbitmq", verb)

    assert booking_burst(stack, buyer, holds) == [201] * BURST
    assert [row.type for hold in holds for row in outbox_rows(stack, hold["id"])] == [
        "hold.placed",
        "booking.confirmed",
    ] * BURST
    wait_for(
        lambda: metric(stack, "outbox_backlog_messages") >= BURST,  # at least the burst's rows, all unpublished
        timeout_s=15,
        what="the backlog at /metrics holds the burst",
    )
    assert not any(row.published for hold in holds for row in outbox_rows(stack, hold["id"])[1:])

    fault("rabbitmq", undo)
    wait_for(lambda: all_published(stack, holds), timeout_s=40, what="every booking.confirmed published")


def test_a_memory_alarm_blocks_publishers_the_relay_backs_off_and_the_api_answers(
    stack: NativeStack, organizer: ApiUser, buyer: ApiUser, low_memory_watermark: None
) -> None:
    holds = [held(stack, organizer, buyer, seats=1) for _ in range(BURST)]  # hold.placed: already blocked
    failed_before = metric(stack, "outbox_messages_total", outcome="failed")
    assert booking_burst(stack, buyer, holds) == [201] * BURST
    wait_for(
        lambda: "blocked" in rabbitmqctl(stack, "list_connections", "state"),
        timeout_s=15,
        what="the broker blocked the app's publishing connection",
    )
    wait_for(
        lambda: metric(stack, "outbox_messages_total", outcome="failed") > failed_before,
        timeout_s=30,
        what="publishes timed out and the relay counted them failed",
    )
    # the gauge is what a relay saw when its last drain began: the next drain (a NOTIFY or the poll) sees them all
    wait_for(
        lambda: metric(stack, "outbox_backlog_messages") >= 2 * BURST,
        timeout_s=30,
        what="the backlog at /metrics holds every blocked booking's messages",
    )
    assert not all_published(stack, holds)

    rabbitmqctl(stack, "set_vm_memory_high_watermark", "0.4")
    wait_for(lambda: all_published(stack, holds), timeout_s=60, what="every row published once the alarm cleared")


async def test_a_relay_killed_between_confirm_and_mark_leaves_a_duplicate_on_the_wire(
    stack: NativeStack, fault: FaultInjector, organizer: ApiUser
) -> None:
    """The app's relays are cut off from the broker, so the relay process of this test publishes the event's row;
    killed before it marks it, the row stays unpublished, and the app's relays send it again once healed."""
    async with tapping(stack) as tap:
        fault("rabbitmq", "cut")
        config = json.dumps(
            {
                "database_url": stack.primary.direct_url.replace("postgresql://", "postgresql+asyncpg://", 1),
                "amqp_url": stack.rabbitmq.direct_url,
            }
        )
        relay = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.relay_process",
            config,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, **stack.app_environment()},  # the app's settings: the topology must match
        )
        try:
            await line_starting(relay, "READY", timeout_s=60)
            status, event = await asyncio.to_thread(_create_event, stack, organizer)
            assert status == 201
            published = (await line_starting(relay, "PUBLISHED ", timeout_s=30)).split()
            row = outbox_rows(stack, event["id"])[0]
            assert row.message_id in published
            os.kill(relay.pid, signal.SIGKILL)
            await relay.wait()
        finally:
            if relay.returncode is None:
                relay.kill()
                await relay.wait()
        assert not outbox_rows(stack, event["id"])[0].published  # confirmed by the broker, never marked

        fault("rabbitmq", "heal")
        await wait_for_async(
            lambda: _copies(tap, event["id"], 2), timeout_s=40, what="the row sent again by the app's relays"
        )
    assert {str(envelope.id) for envelope in tap.of(event["id"])} == {row.message_id}
    wait_for(lambda: outbox_rows(stack, event["id"])[0].published, timeout_s=10, what="marked by the second relay")


def _create_event(stack: NativeStack, organizer: ApiUser) -> tuple[int, dict[str, Any]]:
    status, _, event = call(stack, "POST", "/api/v1/events", user=organizer, body=event_body(rows=1, seats_per_row=1))
    return status, event


async def _copies(tap: Tap, aggregate_id: str, n: int) -> bool:
    return len(tap.of(aggregate_id)) >= n
