"""The worker against the session's real broker and database: every message type is routable, a notification
appears once per message even when the message is published twice, a failing message goes through every retry
tier to the parking lot while the others flow, a parked message sent back once its cause is fixed is applied once,
and the worker's log lines carry the envelope's request and trace ids. See notes/rabbitmq.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from functools import partial

from app.messaging.envelope import MESSAGE_TYPES
from stack.native.stack import NativeStack
from tests.api_users import call, new_user
from tests.messages import booking_confirmed, count_rows, drain, envelope, publish, worker_counts, worker_log
from tests.polling import wait_for
from tests.probes import http


def payload_of(message_type: str) -> dict[str, object]:
    """A valid payload of each type, for users and events that need not exist (routing only)."""
    ids = {name: str(uuid.uuid4()) for name in ("event_id", "organizer_id", "hold_id", "user_id", "booking_id")}
    if message_type.startswith("event."):
        return {
            "event_id": ids["event_id"], "organizer_id": ids["organizer_id"], "title": "t", "city": "c", "venue": "v",
            "starts_at": "2027-01-01T00:00:00+00:00", "price_cents": 1, "version": 1, "status": "scheduled",
        }  # fmt: skip
    if message_type == "hold.placed":
        return {
            "hold_id": ids["hold_id"], "event_id": ids["event_id"], "user_id": ids["user_id"], "seat_ids": [],
            "expires_at": "2027-01-01T00:00:00+00:00",
        }  # fmt: skip
    return {"hold_id": ids["hold_id"], "event_id": ids["event_id"], "user_id": ids["user_id"]}


def applied(stack: NativeStack, message_id: uuid.UUID) -> bool:
    return any(line["event"] in ("message_applied", "message_duplicate") for line in worker_log(stack, message_id))


def notified(stack: NativeStack, message_id: uuid.UUID) -> bool:
    return count_rows(stack, "notification", message_id) == 1


async def test_every_message_type_is_routed_to_a_queue_so_a_return_means_a_real_fault(stack: NativeStack) -> None:
    """Published confirmed and mandatory: a type no binding takes would be returned and raise here. The hold types
    the notifications consumer does not render are still taken, and acknowledged with no effect."""
    wait_for(lambda: http("GET", f"{stack.worker.url}/health/ready")[0] == 200, timeout_s=30, what="worker ready")
    assert "hold.placed" in MESSAGE_TYPES
    assert "payment.settled" in MESSAGE_TYPES
    routable = [envelope(t, payload_of(t)) for t in MESSAGE_TYPES if t != "booking.confirmed"]
    await publish(stack, *routable)
    silent = [m for m in routable if m.type in ("hold.placed", "hold.released")]
    for message in silent:
        wait_for(partial(applied, stack, message.id), timeout_s=15, what=f"{message.type} acknowledged")
        assert count_rows(stack, "notification", message.id) == 0


async def test_a_message_published_twice_notifies_its_buyer_once(stack: NativeStack) -> None:
    buyer = new_user(stack, label="buyer")
    message = booking_confirmed(buyer.id)
    await publish(stack, message, message)
    wait_for(
        lambda: (
            [line["event"] for line in worker_log(stack, message.id) if line["consumer"] == "notifications"]
            == ["message_applied", "message_duplicate"]
        ),
        timeout_s=15,
        what="one copy applied, the other found in the inbox",
    )
    assert count_rows(stack, "notification", message.id) == 1
    assert count_rows(stack, "inbox", message.id) == 2  # one row per consumer: notifications and webhooks
    status, _, page = call(stack, "GET", "/api/v1/me/notifications", user=buyer)
    assert status == 200
    assert [(item["kind"], item["booking_id"]) for item in page["items"]] == [
        ("booking-confirmed", message.payload["booking_id"])
    ]
    assert page["next_cursor"] is None


async def test_notifications_page_newest_first_with_a_cursor(stack: NativeStack) -> None:
    buyer = new_user(stack, label="pager")
    messages = [booking_confirmed(buyer.id) for _ in range(3)]
    for message in messages:  # one at a time, so created_at orders them
        await publish(stack, message)
        wait_for(partial(notified, stack, message.id), timeout_s=15, what="notified")
    _, _, first = call(stack, "GET", "/api/v1/me/notifications?limit=2", user=buyer)
    _, _, second = call(stack, "GET", f"/api/v1/me/notifications?limit=2&cursor={first['next_cursor']}", user=buyer)
    walked = [item["booking_id"] for item in first["items"] + second["items"]]
    assert walked == [m.payload["booking_id"] for m in reversed(messages)]
    assert second["next_cursor"] is None
    other = new_user(stack, label="other")
    assert call(stack, "GET", "/api/v1/me/notifications", user=other)[2]["items"] == []
    assert call(stack, "GET", "/api/v1/me/notifications")[0] == 401


async def test_a_poison_message_is_parked_after_every_tier_while_the_others_flow(stack: NativeStack) -> None:
    """A booking for a user who does not exist fails its insert (foreign key) on every attempt: tried once and once
    per tier (0.2 s, 0.5 s, 1 s in tests), then parked with its failure count; good messages published after it are
    applied meanwhile."""
    await drain(stack, "notifications.parking")
    before = worker_counts(stack, "notifications")
    poison = booking_confirmed(str(uuid.uuid4()))
    buyer = new_user(stack, label="flowing")
    good = [booking_confirmed(buyer.id) for _ in range(5)]
    await publish(stack, poison, *good)
    for message in good:
        wait_for(partial(notified, stack, message.id), timeout_s=15, what="good applied")
    wait_for(
        lambda: any(line["event"] == "message_parked" for line in worker_log(stack, poison.id)),
        timeout_s=30,
        what="the poison message parked",
    )
    events = [line["event"] for line in worker_log(stack, poison.id) if line["consumer"] == "notifications"]
    assert events == ["message_retried"] * 3 + ["message_parked"]
    parked = await drain(stack, "notifications.parking")
    # other tests' messages for users that do not exist may park meanwhile; of this test's six, only the poison does
    ours = {str(message.id) for message in (poison, *good)}
    assert [(m.message_id, (m.headers or {})["x-refstack-failures"]) for m in parked if m.message_id in ours] == [
        (str(poison.id), 4)
    ]
    assert count_rows(stack, "notification", poison.id) == 0
    assert count_rows(stack, "inbox", poison.id) == 1  # the webhooks consumer took it (no webhook: nothing owed)
    after = worker_counts(stack, "notifications")
    assert after["retried"] - before.get("retried", 0) >= 3
    assert after["parked"] - before.get("parked", 0) >= 1


async def test_the_worker_logs_a_message_with_the_request_and_trace_ids_of_its_cause(stack: NativeStack) -> None:
    buyer = new_user(stack, label="traced")
    trace_id = uuid.uuid4().hex
    message = booking_confirmed(
        buyer.id, request_id="req-" + uuid.uuid4().hex, traceparent=f"00-{trace_id}-{'1' * 16}-01"
    )
    await publish(stack, message)
    wait_for(lambda: applied(stack, message.id), timeout_s=15, what="applied")
    lines = worker_log(stack, message.id)
    assert lines
    assert all((line["request_id"], line["trace_id"]) == (message.request_id, trace_id) for line in lines)


async def test_a_parked_message_sent_back_after_its_cause_is_fixed_is_applied_once(stack: NativeStack) -> None:
    """The operator's path: a booking for a user who does not exist yet parks after every tier; the user is then
    created (the cause fixed) and ``python -m app.worker.replay notifications`` sends the parking lot back. The
    buyer gets exactly one notification, the parking lot is empty, and a second replay moves nothing."""
    await drain(stack, "notifications.parking")
    user_id = uuid.uuid4()
    poison = booking_confirmed(str(user_id))
    await publish(stack, poison)
    wait_for(
        lambda: any(line["event"] == "message_parked" for line in worker_log(stack, poison.id)),
        timeout_s=30,
        what="the message parked",
    )
    stack.primary.sql(
        f"INSERT INTO app_user (id, email, password_hash) VALUES ('{user_id}', 'late-{user_id.hex}@example.com', 'x')",
        "refstack",
    )

    def replay() -> str:
        run = subprocess.run(
            [sys.executable, "-m", "app.worker.replay", "notifications"],
            env={**os.environ, **stack.app_environment()},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return run.stdout.strip()

    assert replay() == "replayed 1 message(s) from notifications.parking to notifications"
    wait_for(partial(notified, stack, poison.id), timeout_s=15, what="the replayed message applied")
    assert count_rows(stack, "notification", poison.id) == 1
    assert replay() == "replayed 0 message(s) from notifications.parking to notifications"
    assert await drain(stack, "notifications.parking") == []
