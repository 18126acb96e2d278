"""End to end through every real process: a booking through Nginx, its outbox row, the relay, the broker, the
worker, and ``GET /api/v1/me/notifications``; the worker's log lines about that notification carry the booking
request's ``X-Request-ID`` and trace id. See notes/rabbitmq.md, "What users receive".
"""

from __future__ import annotations

import json
import uuid

import pytest

from stack.native.stack import NativeStack
from tests.api_users import call, new_user
from tests.bookings import book, held
from tests.messages import worker_log
from tests.polling import wait_for

pytestmark = pytest.mark.usefixtures("closed_breakers")


def test_a_booking_notifies_its_buyer_once_and_the_worker_logs_its_request_id(
    stack: NativeStack, simulator: str
) -> None:
    organizer, buyer = new_user(stack, organizer=True, label="org"), new_user(stack, label="buyer")
    hold = held(stack, organizer, buyer)
    status, headers, body = book(stack, buyer, hold["id"], key=f"k-{uuid.uuid4()}")
    assert status == 201, body
    booking_id = json.loads(body)["id"]
    request_id = {k.lower(): v for k, v in headers.items()}["x-request-id"]

    def notified() -> list[dict[str, object]]:
        items: list[dict[str, object]] = call(stack, "GET", "/api/v1/me/notifications", user=buyer)[2]["items"]
        return [item for item in items if item["kind"] == "booking-confirmed"]

    items = wait_for(notified, timeout_s=20, what="the booking's notification")
    assert [item["booking_id"] for item in items] == [booking_id]
    outbox_id = stack.primary.sql(
        f"SELECT message_id FROM outbox WHERE type = 'booking.confirmed' AND payload->>'booking_id' = '{booking_id}'",
        database="refstack",
    )
    lines = worker_log(stack, uuid.UUID(outbox_id))
    applied = [line for line in lines if line["event"] == "message_applied" and line["consumer"] == "notifications"]
    assert len(applied) == 1
    assert applied[0]["request_id"] == request_id
    assert isinstance(applied[0]["trace_id"], str)
    assert len(applied[0]["trace_id"]) == 32
