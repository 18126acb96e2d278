"""The outbox relay against the broker it publishes to: throughput beside raw confirmed publishing, the drain of a
backlog left by a broker outage, and booking → notification latency end to end.

Why these rows and this floor: the relay adds a database round trip per partition batch (lock, read, mark) and a
confirm per message to what a bare publisher does; the floor is raw aio-pika publishing of the same envelopes, with
confirms and ``mandatory``, through the same declared topology, to the same broker, in the same run, with the same
concurrency as the relay's batches (one in flight per aggregate, a batch's aggregates side by side). The relay should
keep at least half of it. The outage row stops the broker for ``--outage`` seconds while a writer keeps appending
rows, starts it again and times the relay through the backlog. The app's own relays are switched off
(``REFSTACK_OUTBOX_RELAY_ENABLED=false``) so the relay measured here is the only one; the messages are
``event.updated`` of events that do not exist, which only the search indexer receives and skips. The last rows book
seats one after another through Nginx and time each booking's 201 to its notification in
``GET /api/v1/me/notifications``: this relay woken by NOTIFY, the stack's worker applying the message. See
notes/rabbitmq.md, "The outbox and its relay".

Run: ``.venv/bin/python -m bench.outbox [--messages 3000 --outage 5 --bookings 50]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime

import httpx
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.messaging.amqp_connection import AmqpConnection
from app.messaging.confirmed_publisher import ConfirmedPublisher, amqp_message
from app.messaging.envelope import EXCHANGE, Envelope, EventChangedV1
from app.messaging.outbox_listener import OutboxListener
from app.messaging.outbox_relay import OutboxRelay, RelayBounds
from app.observability.metrics import build_outbox_metrics
from app.services.unit_of_work import UnitOfWorkFactory
from app.settings import Settings
from bench.through_nginx import account, percentile
from stack.native.layout import Layout
from stack.native.stack import NativeStack
from stack.native.web import UNTHROTTLED

BATCH = 200


def changed_event() -> EventChangedV1:
    """An ``event.updated`` of an event that does not exist: routed to the search indexer alone, which has nothing
    to do for it, so the stack's worker stays out of the way of what is measured."""
    return EventChangedV1(
        event_id=uuid.uuid4(),
        organizer_id=uuid.uuid4(),
        title="Bench",
        city="Bench",
        venue="Hall",
        starts_at=datetime.now(UTC),
        price_cents=100,
        version=2,
        status="scheduled",
    )


def envelopes(n: int) -> list[Envelope]:
    made = []
    for _ in range(n):
        payload = changed_event()
        made.append(
            Envelope(
                id=uuid.uuid4(),
                type="event.updated",
                version=1,
                occurred_at=datetime.now(UTC),
                aggregate_type="event",
                aggregate_id=payload.event_id,
                request_id=None,
                traceparent=None,
                payload=payload.model_dump(mode="json"),
            )
        )
    return made


async def raw_publishing(amqp: AmqpConnection, n: int) -> float:
    """Messages per second with aio-pika alone: confirms and ``mandatory``, ``BATCH`` publishes in flight at a time."""
    channel = await amqp.robust_connection().channel(publisher_confirms=True, on_return_raises=True)
    try:
        exchange = await channel.get_exchange(EXCHANGE)
        pending = envelopes(n)
        began = time.perf_counter()
        for start in range(0, n, BATCH):  # each message built in the timed loop, as the relay builds its own
            window = [amqp_message(envelope) for envelope in pending[start : start + BATCH]]
            await asyncio.gather(
                *(exchange.publish(message, routing_key=str(message.type), mandatory=True) for message in window)
            )
        return n / (time.perf_counter() - began)
    finally:
        await channel.close()


async def append(uows: UnitOfWorkFactory, n: int) -> None:
    """``n`` rows, each its own aggregate, in transactions of ``BATCH``."""
    for start in range(0, n, BATCH):
        async with uows() as uow:
            await uow.outbox.add("event.updated", *(changed_event() for _ in range(min(BATCH, n - start))))
            await uow.commit()


async def relay_throughput(relay: OutboxRelay, uows: UnitOfWorkFactory, n: int) -> float:
    await append(uows, n)
    began = time.perf_counter()
    published = await relay.drain()
    assert published == n, published
    return n / (time.perf_counter() - began)


async def outage_drain(
    stack: NativeStack, relay: OutboxRelay, uows: UnitOfWorkFactory, amqp: AmqpConnection, outage_s: float
) -> tuple[int, float]:
    """Rows appended while the broker was down for ``outage_s``, and the relay's rate through them once it is back."""
    stack.rabbitmq.stop()
    backlog = 0
    ends = time.monotonic() + outage_s
    while time.monotonic() < ends:
        await append(uows, BATCH)
        backlog += BATCH
    stack.rabbitmq.start()
    await asyncio.wait_for(amqp.connection_when_up(), timeout=120)  # the reconnect is not what the drain times
    began = time.perf_counter()
    drained = 0
    while drained < backlog:
        drained += await relay.drain()
    return backlog, backlog / (time.perf_counter() - began)


async def booking_to_notification(stack: NativeStack, relay: OutboxRelay, bookings: int) -> list[float]:
    """Seconds from each booking's 201 (its transaction committed) to its notification in the buyer's list, with
    this relay woken by NOTIFY as the app's are and the stack's worker applying the message."""
    listener = OutboxListener(stack.primary.direct_url, relay.drain, connect_timeout_s=1.0, backoff_max_s=0.5)
    latencies: list[float] = []
    async with listener.running(), httpx.AsyncClient(base_url=stack.nginx.url, timeout=30) as client:
        organizer = await account(client, stack, organizer=True)
        buyer = await account(client, stack)
        body = {
            "title": "Bench",
            "city": "Bench",
            "venue": "Hall",
            "starts_at": "2030-01-01T20:00:00+00:00",
            "price_cents": 100,
            "rows": 1,
            "seats_per_row": bookings,
        }
        event = (await client.post("/api/v1/events", json=body, headers=organizer)).json()
        seats = [seat["id"] for seat in (await client.get(f"/api/v1/events/{event['id']}/seats")).json()["items"]]
        for seat in seats:
            hold = await client.post(f"/api/v1/events/{event['id']}/holds", json={"seat_ids": [seat]}, headers=buyer)
            booked = await client.post("/api/v1/bookings", json={"hold_id": hold.json()["id"]}, headers=buyer)
            booked.raise_for_status()
            committed = time.perf_counter()
            booking_id = booked.json()["id"]
            while True:  # bounded by the client's timeout per request and the bench's own patience below
                page = (await client.get("/api/v1/me/notifications?limit=5", headers=buyer)).json()
                if any(item["booking_id"] == booking_id for item in page["items"]):
                    break
                if time.perf_counter() - committed > 30:
                    raise TimeoutError(f"no notification for booking {booking_id} after 30 s")
                await asyncio.sleep(0.005)  # sleep-ok: the poll interval; a tight poll would load the app it measures
            latencies.append(time.perf_counter() - committed)
    return latencies


async def measure(stack: NativeStack, messages: int, outage_s: float, bookings: int) -> None:
    settings = Settings(amqp_url=stack.rabbitmq.direct_url, amqp_reconnect_interval_s=0.5)
    engine: AsyncEngine = create_async_engine(
        stack.primary.direct_url.replace("postgresql://", "postgresql+asyncpg://", 1), pool_size=4
    )
    amqp = AmqpConnection(settings)
    amqp.start()
    publisher = ConfirmedPublisher(amqp, settings)
    try:
        await asyncio.wait_for(amqp.connection_when_up(), timeout=120)
        uows = UnitOfWorkFactory(engine, None)
        bounds = RelayBounds(batch=BATCH, retry_attempts=20, backoff_base_s=0.05, backoff_max_s=0.5)
        relay = OutboxRelay(uows, publisher, bounds, build_outbox_metrics(CollectorRegistry()))
        await relay.drain()  # whatever the seed wrote; it also declares the topology
        raw = await raw_publishing(amqp, messages)
        relayed = await relay_throughput(relay, uows, messages)
        backlog, drain_rate = await outage_drain(stack, relay, uows, amqp, outage_s)
        notified = await booking_to_notification(stack, relay, bookings)
    finally:
        await publisher.aclose()
        await amqp.aclose()
        await engine.dispose()
    print(f"\noutbox relay vs raw aio-pika confirmed publishing, {messages} messages, one aggregate each, same broker")
    print(f"{'row':<46}{'msg/s':>10}{'x raw':>8}")
    print(f"{'raw aio-pika, confirms + mandatory (floor)':<46}{raw:>10.0f}{1.0:>8.2f}")
    print(f"{'OutboxRelay.drain (rows already committed)':<46}{relayed:>10.0f}{relayed / raw:>8.2f}")
    label = f"drain of {backlog} rows after {outage_s:.0f} s broker outage"
    print(f"{label:<46}{drain_rate:>10.0f}{drain_rate / raw:>8.2f}")
    print(f"\nbooking committed -> notification listed, {bookings} bookings one after another (relay woken by NOTIFY)")
    print(f"{'p50 (ms)':<46}{percentile(notified, 0.5) * 1000:>10.1f}")
    print(f"{'p99 (ms)':<46}{percentile(notified, 0.99) * 1000:>10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--outage", type=float, default=5.0)
    parser.add_argument("--bookings", type=int, default=50)
    args = parser.parse_args()
    stack = NativeStack(
        Layout.create(fixed=False), app_settings={"REFSTACK_OUTBOX_RELAY_ENABLED": "false"}, edge_limits=UNTHROTTLED
    )
    try:
        stack.up(report=lambda _: None)
        asyncio.run(measure(stack, args.messages, args.outage, args.bookings))
    finally:
        stack.down()


if __name__ == "__main__":
    main()
