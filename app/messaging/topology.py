"""The broker's topology as code: what the worker and the relay both declare, idempotently, before they start.

Why declared by both: whichever process reaches the broker first creates the exchange, every consumer's queue and
its bindings, so a message the relay publishes with ``mandatory`` is routable even before the first worker runs
(a return then means a real topology fault, never a start-up race). Declaring is idempotent while the arguments
match; a changed argument makes the broker refuse the declare (PRECONDITION_FAILED), which is why both take their
numbers from the one ``Settings`` object, and why the tier delays are part of the retry queues' names.

The shape, per consumer queue ``Q`` (see notes/rabbitmq.md, "Exchanges and routing" and "Retries, parking and
poison messages"):

- ``refstack.events`` (topic) → ``Q`` through ``Q``'s routing keys. ``Q`` is a quorum queue with
  ``x-delivery-limit``: a message whose consumer dies with it unacknowledged (a crash, a SIGKILL, a lost link) is
  redelivered, and after the limit the broker dead-letters it to ``Q.parking`` instead of offering it forever.
- ``refstack.consumers`` (direct) addresses one queue of one consumer by name. A consumer whose handler failed
  publishes the message there under ``Q.retry.<delay>`` with the failure count in a header (the tier is chosen by
  that count); each retry queue holds it for its TTL and dead-letters it back to ``Q`` (routing key ``Q`` on the
  same exchange), so only the consumer that failed sees it again. After the last tier it goes to ``Q.parking``,
  which nothing consumes: a person looks, fixes, and moves it back.
- Dead-lettering out of quorum queues is ``at-least-once`` (needs ``x-overflow: reject-publish``): the broker keeps
  the message until the target queue has confirmed it, where the default (``at-most-once``) may drop it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel

from app.messaging.envelope import EXCHANGE
from app.settings import Settings

CONSUMERS_EXCHANGE = "refstack.consumers"

# Which message types each consumer's queue receives; together they route every type of app/messaging/envelope.py
BINDINGS: Mapping[str, tuple[str, ...]] = {
    "notifications": ("hold.#", "booking.#", "payment.#"),
    "webhooks": ("booking.confirmed",),
    "search-indexer": ("event.#",),
}

_QUORUM_DEAD_LETTERS = {
    "x-queue-type": "quorum",
    "x-dead-letter-exchange": CONSUMERS_EXCHANGE,
    "x-dead-letter-strategy": "at-least-once",
    "x-overflow": "reject-publish",
}


def retry_queue(queue: str, delay_s: float) -> str:
    """``notifications.retry.1000ms``: the delay is in the name, so a changed tier is a new queue, not a refused
    redeclare of the old one."""
    return f"{queue}.retry.{round(delay_s * 1000)}ms"


def parking_queue(queue: str) -> str:
    return f"{queue}.parking"


@dataclass(frozen=True)
class ConsumerQueues:
    """The names of one consumer's queues and where a failure of its ``failures``-th attempt goes next."""

    queue: str
    retry_delays_s: tuple[float, ...]

    @property
    def parking(self) -> str:
        return parking_queue(self.queue)

    def after_failure(self, failures: int) -> str:
        """The routing key (on ``CONSUMERS_EXCHANGE``) for a message that has now failed ``failures`` times:
        the tier of that count while one is left, else the parking lot."""
        if failures < 1:
            raise ValueError("a message goes to a retry tier only after it has failed")
        if failures <= len(self.retry_delays_s):
            return retry_queue(self.queue, self.retry_delays_s[failures - 1])
        return self.parking


def consumer_queues(queue: str, settings: Settings) -> ConsumerQueues:
    return ConsumerQueues(queue=queue, retry_delays_s=tuple(settings.worker_retry_delays_s))


async def declare(channel: AbstractChannel, settings: Settings) -> None:
    """Declare the exchanges, every consumer's queue, retry tiers and parking lot, and their bindings.

    Idempotent: run by every relay and every worker at start (and again by aio-pika's robust channel after a
    reconnect, for what was declared through it)."""
    events = await channel.declare_exchange(EXCHANGE, ExchangeType.TOPIC, durable=True)
    consumers = await channel.declare_exchange(CONSUMERS_EXCHANGE, ExchangeType.DIRECT, durable=True)
    for name, routing_keys in BINDINGS.items():
        queues = consumer_queues(name, settings)
        main = await channel.declare_queue(
            name,
            durable=True,
            arguments={
                **_QUORUM_DEAD_LETTERS,
                "x-dead-letter-routing-key": queues.parking,
                "x-delivery-limit": settings.worker_delivery_limit,
            },
        )
        for routing_key in routing_keys:
            await main.bind(events, routing_key)
        await main.bind(consumers, name)
        for delay_s in queues.retry_delays_s:
            tier = retry_queue(name, delay_s)
            retry = await channel.declare_queue(
                tier,
                durable=True,
                arguments={
                    **_QUORUM_DEAD_LETTERS,
                    "x-dead-letter-routing-key": name,
                    "x-message-ttl": round(delay_s * 1000),
                },
            )
            await retry.bind(consumers, tier)
        parking = await channel.declare_queue(queues.parking, durable=True, arguments={"x-queue-type": "quorum"})
        await parking.bind(consumers, queues.parking)
