"""The outbox on the real stack: each change writes exactly its messages in its own transaction (none when it rolls
back), each row carries the request id and traceparent of the request that caused it, and the app's relays put
every row on the broker with the envelope's id and trace headers, then mark it published; an unroutable message is
returned, kept and counted; cancellation is a PATCH that ends holds on the event.

See notes/rabbitmq.md, "The outbox and its relay" and "Publisher confirms and mandatory".
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.messaging.envelope import EXCHANGE, HoldEndedV1
from app.services.hold_ledger import SqlHoldLedger
from app.services.unit_of_work import UnitOfWorkFactory
from stack.native.stack import NativeStack
from tests.api_users import ApiUser, call, create_event, new_user
from tests.bookings import book, held
from tests.outbox_tap import metric, outbox_rows, tapping, types_of
from tests.polling import wait_for, wait_for_async

pytestmark = pytest.mark.usefixtures("closed_breakers")
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def organizer(stack: NativeStack) -> ApiUser:
    return new_user(stack, organizer=True, label="outbox-organizer")


@pytest.fixture(scope="module")
def buyer(stack: NativeStack) -> ApiUser:
    return new_user(stack, label="outbox-buyer")


def first_seats(stack: NativeStack, event_id: str, n: int) -> list[str]:
    status, _, listing = call(stack, "GET", f"/api/v1/events/{event_id}/seats")
    assert status == 200
    return [seat["id"] for seat in listing["items"][:n]]


def patch(stack: NativeStack, organizer: ApiUser, event_id: str, body: dict[str, Any]) -> tuple[int, Any]:
    _, headers, _ = call(stack, "GET", f"/api/v1/events/{event_id}", user=organizer)  # past the edge's micro-cache
    status, _, answer = call(
        stack, "PATCH", f"/api/v1/events/{event_id}", user=organizer, body=body, headers={"If-Match": headers["etag"]}
    )
    return status, answer


def test_each_event_change_writes_its_message_with_the_request_that_caused_it(
    stack: NativeStack, organizer: ApiUser
) -> None:
    request_id = f"outbox-{uuid.uuid4().hex[:8]}"
    status, _, event = call(
        stack,
        "POST",
        "/api/v1/events",
        user=organizer,
        body={
            "title": "Outbox night",
            "city": "Lyon",
            "venue": "Hall",
            "starts_at": "2027-06-01T20:00:00+00:00",
            "price_cents": 1000,
            "rows": 1,
            "seats_per_row": 2,
        },
        headers={"X-Request-ID": request_id, "traceparent": INCOMING},
    )
    assert status == 201
    assert patch(stack, organizer, event["id"], {"title": "Outbox night (late show)"})[0] == 200
    assert patch(stack, organizer, event["id"], {"status": "cancelled"})[0] == 200

    rows = outbox_rows(stack, event["id"])
    assert [row.type for row in rows] == ["event.created", "event.updated", "event.cancelled"]
    assert rows[0].request_id == request_id
    trace = rows[0].traceparent.split("-")
    assert trace[1] == TRACE_ID
    assert trace[2] != "00f067aa0ba902b7"  # our span, a child of the caller's
    assert rows[1].traceparent.split("-")[1] != TRACE_ID  # no traceparent sent: a new trace


def test_a_cancelled_event_takes_no_patch_and_no_hold(stack: NativeStack, organizer: ApiUser, buyer: ApiUser) -> None:
    event = create_event(stack, organizer)
    assert patch(stack, organizer, event["id"], {"status": "cancelled"})[0] == 200
    _, _, read = call(stack, "GET", f"/api/v1/events/{event['id']}", user=organizer)
    assert read["status"] == "cancelled"
    status, problem = patch(stack, organizer, event["id"], {"title": "Back on"})
    assert (status, problem["type"]) == (409, "https://refstack.dev/problems/event-cancelled")
    seats = first_seats(stack, event["id"], 1)
    status, _, problem = call(
        stack, "POST", f"/api/v1/events/{event['id']}/holds", user=buyer, body={"seat_ids": seats}
    )
    assert (status, problem["type"]) == (409, "https://refstack.dev/problems/event-cancelled")
    assert types_of(stack, event["id"]) == ["event.created", "event.cancelled"]


def test_a_hold_writes_placed_then_released_and_a_refused_hold_writes_nothing(
    stack: NativeStack, organizer: ApiUser, buyer: ApiUser
) -> None:
    event = create_event(stack, organizer)
    seats = first_seats(stack, event["id"], 2)
    status, _, hold = call(stack, "POST", f"/api/v1/events/{event['id']}/holds", user=buyer, body={"seat_ids": seats})
    assert status == 201
    placed_before = stack.primary.sql("SELECT count(*) FROM outbox WHERE type = 'hold.placed'", "refstack")
    # the seats are taken: the transaction rolls back after it inserted its hold, and its outbox row with it
    assert call(stack, "POST", f"/api/v1/events/{event['id']}/holds", user=buyer, body={"seat_ids": seats})[0] == 409
    placed_after = stack.primary.sql("SELECT count(*) FROM outbox WHERE type = 'hold.placed'", "refstack")
    assert call(stack, "DELETE", f"/api/v1/holds/{hold['id']}", user=buyer)[0] == 204
    assert call(stack, "DELETE", f"/api/v1/holds/{hold['id']}", user=buyer)[0] == 204  # idempotent: no second row

    assert types_of(stack, hold["id"]) == ["hold.placed", "hold.released"]
    assert placed_after == placed_before


def test_the_sweeper_writes_one_expired_message_per_hold(
    stack: NativeStack, organizer: ApiUser, buyer: ApiUser
) -> None:
    event = create_event(stack, organizer, rows=1, seats_per_row=3)
    seats = first_seats(stack, event["id"], 3)
    holds = []
    for seat in seats:
        status, _, hold = call(
            stack, "POST", f"/api/v1/events/{event['id']}/holds", user=buyer, body={"seat_ids": [seat]}
        )
        assert status == 201
        holds.append(hold["id"])
    ids = ",".join(f"'{hold}'" for hold in holds)
    stack.primary.sql(f"UPDATE hold SET expires_at = now() - interval '1 second' WHERE id IN ({ids})", "refstack")
    wait_for(
        lambda: all(types_of(stack, hold) == ["hold.placed", "hold.expired"] for hold in holds),
        timeout_s=15,
        what="the app's sweeper expired the three holds, one hold.expired each",
    )


def test_a_booking_writes_booking_confirmed_with_its_seats(
    stack: NativeStack, organizer: ApiUser, buyer: ApiUser
) -> None:
    hold = held(stack, organizer, buyer, seats=2)
    status, _, _ = book(stack, buyer, hold["id"])
    assert status == 201
    assert types_of(stack, hold["id"]) == ["hold.placed", "booking.confirmed"]
    payload = stack.primary.sql(
        f"SELECT payload->>'amount_cents', jsonb_array_length(payload->'seat_ids') FROM outbox"
        f" WHERE aggregate_id = '{hold['id']}' AND type = 'booking.confirmed'",
        "refstack",
    )
    assert payload == "5000|2"


async def test_the_reconciler_settling_writes_payment_settled(
    stack: NativeStack, organizer: ApiUser, buyer: ApiUser, engine: AsyncEngine
) -> None:
    ledger = SqlHoldLedger(UnitOfWorkFactory(engine, None))
    booked, released = held(stack, organizer, buyer, seats=1), held(stack, organizer, buyer, seats=1)
    now = datetime.now(UTC)
    claims = {}
    for hold in (booked, released):
        hold_id = uuid.UUID(hold["id"])
        claims[hold["id"]] = await ledger.claim(
            user_id=uuid.UUID(buyer.id), hold_id=hold_id, payment_key=f"key-{hold_id}", now=now
        )
    async with engine.connect() as connection:
        leased_at = await connection.scalar(text(f"SELECT paying_since FROM hold WHERE id = '{released['id']}'"))
    record = await ledger.record(
        user_id=uuid.UUID(buyer.id),
        hold_id=uuid.UUID(booked["id"]),
        claimed=claims[booked["id"]],
        payment_id=f"ch_{uuid.uuid4().hex}",
        reconciled=True,
    )
    assert record is not None
    assert await ledger.give_back(uuid.UUID(released["id"]), leased_at=leased_at)

    assert types_of(stack, booked["id"]) == ["hold.placed", "booking.confirmed", "payment.settled"]
    assert types_of(stack, released["id"]) == ["hold.placed", "payment.settled"]
    outcome = stack.primary.sql(
        f"SELECT payload->>'outcome' FROM outbox WHERE aggregate_id = '{released['id']}' AND type = 'payment.settled'",
        "refstack",
    )
    assert outcome == "released"


async def test_a_rolled_back_unit_of_work_leaves_no_outbox_row(engine: AsyncEngine) -> None:
    hold_id = uuid.uuid4()

    async def fail_after_appending() -> None:
        async with UnitOfWorkFactory(engine, None)() as uow:
            ended = HoldEndedV1(hold_id=hold_id, event_id=uuid.uuid4(), user_id=uuid.uuid4())
            await uow.outbox.add("hold.released", ended)
            raise RuntimeError("the change failed after its message was appended")

    with pytest.raises(RuntimeError):
        await fail_after_appending()
    async with engine.connect() as connection:
        assert await connection.scalar(text(f"SELECT count(*) FROM outbox WHERE aggregate_id = '{hold_id}'")) == 0


async def test_the_relay_publishes_each_row_once_with_its_id_and_trace_then_marks_it(
    stack: NativeStack, organizer: ApiUser
) -> None:
    async with tapping(stack) as tap:
        status, _, event = call(
            stack, "POST", "/api/v1/events", user=organizer, body=_event_body(), headers={"traceparent": INCOMING}
        )
        assert status == 201
        received = await wait_for_async(
            lambda: _ready(tap.of(event["id"])), timeout_s=10, what="event.created on the broker"
        )
    row = outbox_rows(stack, event["id"])[0]
    wait_for(lambda: outbox_rows(stack, event["id"])[0].published, timeout_s=5, what="the row marked published")
    assert [envelope.type for envelope in received] == ["event.created"]
    assert str(received[0].id) == row.message_id
    message = next(message for message, envelope in tap.received if envelope.id == received[0].id)
    assert message.message_id == row.message_id
    assert message.headers["traceparent"] == row.traceparent
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT


async def test_an_unroutable_message_is_returned_kept_and_counted(stack: NativeStack, organizer: ApiUser) -> None:
    """With event.* bound to no queue, the broker returns event.created: the row stays unpublished, its attempts and
    the returned counter grow; bound again, it goes out."""
    connection = await aio_pika.connect(stack.rabbitmq.direct_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(EXCHANGE)
        indexer = await channel.get_queue("search-indexer")
        await indexer.unbind(exchange, "event.#")
        returned_before = metric(stack, "outbox_messages_total", outcome="returned")
        try:
            event = create_event(stack, organizer)
            wait_for(
                lambda: outbox_rows(stack, event["id"])[0].attempts >= 1,
                timeout_s=10,
                what="the broker returned event.created and the relay recorded it",
            )
            assert not outbox_rows(stack, event["id"])[0].published
            wait_for(
                lambda: metric(stack, "outbox_messages_total", outcome="returned") > returned_before,
                timeout_s=5,
                what="outbox_messages_total{outcome=returned} grew",
            )
        finally:
            await indexer.bind(exchange, "event.#")
    finally:
        await connection.close()
    wait_for(lambda: outbox_rows(stack, event["id"])[0].published, timeout_s=10, what="published once routable")


def _event_body() -> dict[str, object]:
    return {
        "title": "Relay night",
        "city": "Nantes",
        "venue": "Hall",
        "starts_at": "2027-06-01T20:00:00+00:00",
        "price_cents": 1000,
        "rows": 1,
        "seats_per_row": 1,
    }


async def _ready(envelopes: list[Any]) -> list[Any]:
    return envelopes
