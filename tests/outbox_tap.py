"""What the outbox tests read: an aggregate's outbox rows on the primary, the relay's figures at ``/metrics``, and a
tap on the broker (a private queue bound to ``#`` on ``refstack.events``) that collects every message published.

Why a tap of our own: the consumers' queues belong to the worker, which acks and removes what it reads; a private,
exclusive queue sees the same messages without taking them from anyone, and disappears with its connection. See
notes/rabbitmq.md, "The outbox and its relay".
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from prometheus_client.parser import text_string_to_metric_families

from app.messaging.envelope import EXCHANGE, Envelope
from stack.native.stack import NativeStack
from tests.probes import http


@dataclass(frozen=True)
class OutboxRow:
    id: int
    type: str
    message_id: str
    request_id: str
    traceparent: str
    published: bool
    attempts: int


def outbox_rows(stack: NativeStack, aggregate_id: str) -> list[OutboxRow]:
    """The aggregate's rows in id order."""
    out = stack.primary.sql(
        "SELECT id, type, message_id, coalesce(request_id, ''), coalesce(traceparent, ''), published_at IS NOT NULL,"
        f" attempts FROM outbox WHERE aggregate_id = '{aggregate_id}' ORDER BY id",
        "refstack",
    )
    rows = [line.split("|") for line in out.splitlines() if line]
    return [OutboxRow(int(r[0]), r[1], r[2], r[3], r[4], r[5] == "t", int(r[6])) for r in rows]


def types_of(stack: NativeStack, aggregate_id: str) -> list[str]:
    return [row.type for row in outbox_rows(stack, aggregate_id)]


def metric(stack: NativeStack, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples with these labels at the app's /metrics (0 when there is none)."""
    exposition = http("GET", f"{stack.app.url}/metrics")[2].decode()
    total = 0.0
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


@dataclass
class Tap:
    """Every message the tap's queue received, in arrival order, as (AMQP properties, envelope)."""

    received: list[tuple[AbstractIncomingMessage, Envelope]] = field(default_factory=list)

    def of(self, aggregate_id: str) -> list[Envelope]:
        return [envelope for _, envelope in self.received if str(envelope.aggregate_id) == aggregate_id]


@asynccontextmanager
async def tapping(stack: NativeStack) -> AsyncIterator[Tap]:
    """A tap on the stack's broker (directly, past the fault proxy) for the duration of the ``async with``."""
    tap = Tap()
    connection = await aio_pika.connect(stack.rabbitmq.direct_url)
    try:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, "#")

        async def collect(message: AbstractIncomingMessage) -> None:
            tap.received.append((message, Envelope.model_validate(json.loads(message.body))))
            await message.ack()

        await queue.consume(collect)
        yield tap
    finally:
        await connection.close()
