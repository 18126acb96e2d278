"""Steps the worker tests share: publish an envelope to the broker as the relay would, read the worker's counters
and log, count rows.

Why publish by hand: these tests are about the consumer half (topology, inbox, retries, parking); publishing the
envelope directly, with the relay's AMQP properties, lets a test send the same message twice or a broken one, which
the relay never does on purpose. See notes/rabbitmq.md.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import aio_pika

from app.messaging.envelope import EXCHANGE, Envelope
from stack.native.stack import NativeStack
from tests.probes import http


def envelope(message_type: str, payload: dict[str, Any], **fields: Any) -> Envelope:
    aggregate = payload.get("hold_id") or payload.get("event_id")
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "type": message_type,
        "version": 1,
        "occurred_at": datetime.now(UTC),
        "aggregate_type": "hold" if "hold_id" in payload else "event",
        "aggregate_id": aggregate,
        "request_id": None,
        "traceparent": None,
        "payload": payload,
    }
    return Envelope(**{**values, **fields})


def booking_confirmed(user_id: str, event_id: str | None = None, **fields: Any) -> Envelope:
    payload = {
        "booking_id": str(uuid.uuid4()),
        "hold_id": str(uuid.uuid4()),
        "event_id": event_id or str(uuid.uuid4()),
        "user_id": user_id,
        "amount_cents": 5000,
        "seat_ids": [str(uuid.uuid4()), str(uuid.uuid4())],
    }
    return envelope("booking.confirmed", payload, **fields)


def amqp_message(message: Envelope) -> aio_pika.Message:
    """The AMQP message the relay sends for ``message`` (the properties of the messaging contract)."""
    headers = {"traceparent": message.traceparent, "x-request-id": message.request_id}
    return aio_pika.Message(
        message.model_dump_json().encode(),
        message_id=str(message.id),
        type=message.type,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers={k: v for k, v in headers.items() if v is not None},
    )


async def publish(stack: NativeStack, *messages: Envelope | aio_pika.Message, routing_key: str | None = None) -> None:
    """Publish each message to ``refstack.events`` (routing key = its type), confirmed and mandatory: a message no
    queue takes raises instead of vanishing."""
    connection = await aio_pika.connect(stack.rabbitmq.direct_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(EXCHANGE)
        for message in messages:
            body = amqp_message(message) if isinstance(message, Envelope) else message
            await exchange.publish(body, routing_key=routing_key or str(body.type), mandatory=True)


async def drain(stack: NativeStack, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Take (and ack) every message waiting in ``queue``: for the parking lot, which nothing consumes."""
    taken = []
    connection = await aio_pika.connect(stack.rabbitmq.direct_url)
    async with connection:
        channel = await connection.channel()
        source = await channel.get_queue(queue)
        while (message := await source.get(fail=False, timeout=5)) is not None:
            await message.ack()
            taken.append(message)
    return taken


def worker_counts(stack: NativeStack, consumer: str) -> dict[str, float]:
    """``worker_messages_total`` of one consumer by outcome, from the worker's /metrics."""
    status, _, text = http("GET", f"{stack.worker.url}/metrics")
    assert status == 200
    pattern = re.compile(rf'^worker_messages_total\{{consumer="{consumer}",outcome="(\w+)"\}} (\S+)$', re.M)
    return {outcome: float(value) for outcome, value in pattern.findall(text.decode())}


def worker_log(stack: NativeStack, message_id: uuid.UUID) -> list[dict[str, Any]]:
    """The worker's JSON log lines about one message, in order."""
    lines = stack.worker.log_path.read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if str(message_id) in line and line.startswith("{")]


def count_rows(stack: NativeStack, table: str, message_id: uuid.UUID) -> int:
    return int(
        stack.primary.sql(f"SELECT count(*) FROM {table} WHERE message_id = '{message_id}'", database="refstack")
    )
