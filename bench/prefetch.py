"""Prefetch, measured: how fast the worker's notifications consumer drains a backlog at prefetch 1, 4, 16 and 64,
on loopback and across a link slowed by the fault proxy (what a broker in another zone costs).

Why this measurement decides the worker's prefetch: the worker handles one delivery at a time per consumer
(app/worker/consuming.py), so prefetch is only how many deliveries wait in the client while one is handled. At 1
the broker sends the next message only after the previous ack arrives: one round trip of idle time per message. A
window hides it; past the point where the broker's sends keep ahead of the handler, more buys nothing and only
strands more unacknowledged messages in one process (all redelivered, and all counted toward ``x-delivery-limit``,
if it dies). The floor is prefetch 1 on the same link in the same run; each row's ratio is against it. The handler is
the real one: ``DeliveryHandler`` with ``NotificationsConsumer`` (inbox row + notification, one transaction on the
private primary). See notes/rabbitmq.md, "Prefetch, measured".

Run: ``.venv/bin/python -m bench.prefetch [--messages 300 --slow-ms 2 --rounds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime

import aio_pika
import aiormq
from prometheus_client import CollectorRegistry

from app.db.engines import Engines
from app.messaging.envelope import EXCHANGE, BookingConfirmedV1, Envelope
from app.messaging.topology import declare
from app.observability.logging import configure_logging
from app.services.notifications import NotificationsConsumer
from app.services.unit_of_work import TransactionTimeouts, UnitOfWorkFactory
from app.settings import Settings
from app.worker.consumers import Subscription
from app.worker.consuming import Consuming
from app.worker.metrics import build_worker_metrics
from stack.native.fault_proxy import send_command
from stack.native.layout import Layout
from stack.native.stack import NativeStack, asyncpg_url

PREFETCHES = (1, 4, 16, 64)


def booking(user_id: uuid.UUID) -> aio_pika.Message:
    payload = BookingConfirmedV1(
        booking_id=uuid.uuid4(), hold_id=uuid.uuid4(), event_id=uuid.uuid4(), user_id=user_id, amount_cents=100,
        seat_ids=[uuid.uuid4()],
    )  # fmt: skip
    message = Envelope(
        id=uuid.uuid4(), type="booking.confirmed", version=1, occurred_at=datetime.now(UTC), aggregate_type="hold",
        aggregate_id=payload.hold_id, request_id=None, traceparent=None, payload=payload.model_dump(mode="json"),
    )  # fmt: skip
    return aio_pika.Message(message.model_dump_json().encode(), message_id=str(message.id), type=message.type)


async def drain_rate(
    settings: Settings, uows: UnitOfWorkFactory, user_id: uuid.UUID, prefetch: int, n: int, amqp_url: str
) -> float:
    """Publish ``n`` messages while nothing consumes, then time one consumer at ``prefetch`` through all of them,
    connected to the broker at ``amqp_url``."""
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await declare(channel, settings)
        exchange = await channel.get_exchange(EXCHANGE)
        await asyncio.gather(*(exchange.publish(booking(user_id), "booking.confirmed") for _ in range(n)))
        registry = CollectorRegistry()
        consuming = Consuming(
            settings, uows, [Subscription(NotificationsConsumer(), prefetch)], build_worker_metrics(registry)
        )
        began = time.perf_counter()
        await consuming.start(connection)
        labels = {"consumer": "notifications", "outcome": "applied"}
        while (registry.get_sample_value("worker_messages_total", labels) or 0) < n:  # noqa: ASYNC110 - a counter
            await asyncio.sleep(0.005)  # sleep-ok: the poll interval of a bounded benchmark
        seconds = time.perf_counter() - began
        await consuming.stop()
        await (await channel.get_queue("webhooks")).purge()  # it binds booking.confirmed too; nothing consumes it here
    return n / seconds


async def measure(stack: NativeStack, messages: int, slow_ms: int, rounds: int, settings: Settings) -> None:
    engines = Engines.open(settings)
    uows = UnitOfWorkFactory(engines.primary, TransactionTimeouts.of(settings))
    user_id = uuid.UUID(
        stack.primary.sql(
            "INSERT INTO app_user (email, password_hash) VALUES ('prefetch@example.com', 'x') RETURNING id",
            database="refstack",
        ).splitlines()[0]
    )
    # the slowed link is the stack's fault proxy, reached on its own port and told directly (no hop diversion)
    control, proxied = stack.layout.ports["control"], stack.layout.ports["proxy_rabbitmq"]
    links = (
        ("loopback", stack.rabbitmq.direct_url, 0),
        (f"+{slow_ms} ms each way", f"amqp://guest:guest@127.0.0.1:{proxied}/", slow_ms),
    )
    rates: dict[tuple[str, int], list[float]] = {}
    for link, url, delay in links:
        send_command(control, f"slow rabbitmq {delay}" if delay else "heal rabbitmq")
        for _ in range(rounds):  # the prefetches interleaved round after round: a busy spell hits all of them
            for prefetch in PREFETCHES:
                rate = await drain_rate(settings, uows, user_id, prefetch, messages, url)
                rates.setdefault((link, prefetch), []).append(rate)
    send_command(control, "heal rabbitmq")
    rows = [(link, prefetch, statistics.median(values)) for (link, prefetch), values in rates.items()]
    await engines.dispose()
    probe = await aiormq.connect(stack.rabbitmq.direct_url)
    version = probe.server_properties["version"]
    version = version.decode() if isinstance(version, bytes) else str(version)
    await probe.close()
    print(
        f"\nnotifications consumer draining {messages} messages, median of {rounds} interleaved rounds"
        f" (RabbitMQ {version}, private PostgreSQL primary)"
    )
    print(f"{'link':<22}{'prefetch':>9}{'msg/s':>9}{'x prefetch 1':>14}")
    for link, prefetch, rate in rows:
        floor = next(r for lk, p, r in rows if lk == link and p == 1)
        print(f"{link:<22}{prefetch:>9}{rate:>9.0f}{rate / floor:>14.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--slow-ms", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    configure_logging("warning", json=True)  # a line per message would cost more than what is measured
    stack = NativeStack(Layout.create(fixed=False))
    stack.save_state()  # a killed run leaves a state file the reaper can clean up
    try:
        stack._start_fault_proxy()
        stack.rabbitmq.start()
        stack.primary.start()
        stack.migrate()
        stack.save_state()
        settings = Settings(
            database_url=asyncpg_url(stack.primary.direct_url),
            amqp_url=stack.rabbitmq.direct_url,
        )
        asyncio.run(measure(stack, args.messages, args.slow_ms, args.rounds, settings))
    finally:
        stack.down()


if __name__ == "__main__":
    main()
