"""The worker's consuming: one channel and one queue iterator per consumer, handled one delivery at a time, and a
graceful stop.

Why one delivery at a time per consumer: it keeps a queue's order within one worker (a message is applied before
the next one is taken) and bounds what the worker holds of the database pool to one connection per consumer;
``prefetch`` (app/worker/consumers.py) is then only the window that hides the broker round trip. Order still breaks
across competing workers and on redelivery or retry (notes/rabbitmq.md, "Ordering, and where it breaks").

Why the stop looks like this: on SIGTERM each iterator is closed, which sends ``basic.cancel`` (no new deliveries)
and returns the prefetched deliveries not yet started to the queue (``nack`` with requeue); the delivery being
handled is finished and acknowledged, within ``worker_shutdown_grace_s``. Past the grace the handler is cancelled,
its transaction rolls back and the connection's close returns its delivery: nothing acknowledged is lost, nothing
unacknowledged is applied. The robust connection and iterators resubscribe after a lost link by themselves.
See notes/rabbitmq.md, "Acks, nacks and a graceful stop".
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from aio_pika.abc import AbstractQueueIterator, AbstractRobustConnection

from app.messaging.topology import CONSUMERS_EXCHANGE, consumer_queues, declare
from app.services.unit_of_work import UnitOfWorkFactory
from app.settings import Settings
from app.worker.consumers import Subscription
from app.worker.delivery import DeliveryHandler
from app.worker.metrics import WorkerMetrics

log = structlog.get_logger(__name__)


class Consuming:
    """``await consuming.start(connection)``, then ``await consuming.stop()``; ``ready`` while every queue is
    subscribed."""

    def __init__(
        self, settings: Settings, uows: UnitOfWorkFactory, subscriptions: list[Subscription], metrics: WorkerMetrics
    ) -> None:
        self._settings = settings
        self._uows = uows
        self._subscriptions = subscriptions
        self._metrics = metrics
        self._iterators: list[AbstractQueueIterator] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def ready(self) -> bool:
        return bool(self._tasks) and not self._stopping and all(not task.done() for task in self._tasks)

    async def start(self, connection: AbstractRobustConnection) -> None:
        """Declare the topology, then subscribe every consumer's queue with its own channel and prefetch."""
        await declare(await connection.channel(publisher_confirms=False), self._settings)
        retry_channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        retries = await retry_channel.get_exchange(CONSUMERS_EXCHANGE)
        for subscription in self._subscriptions:
            name = subscription.consumer.queue
            channel = await connection.channel(publisher_confirms=False)
            await channel.set_qos(prefetch_count=subscription.prefetch)
            queue = await channel.get_queue(name)
            handler = DeliveryHandler(
                subscription.consumer, consumer_queues(name, self._settings), self._uows, retries, self._metrics
            )
            iterator = queue.iterator()
            self._iterators.append(iterator)
            self._tasks.append(asyncio.create_task(self._consume(iterator, handler), name=f"consume-{name}"))
            log.info("consuming", consumer=name, prefetch=subscription.prefetch)

    @staticmethod
    async def _consume(iterator: AbstractQueueIterator, handler: DeliveryHandler) -> None:
        async for message in iterator:
            try:
                await handler(message)
            except Exception:  # e.g. the link died under an ack: the broker redelivers; the loop must go on
                log.exception("delivery_failed", consumer=handler.consumer.queue)

    async def stop(self) -> None:
        """Stop taking deliveries, finish the one in hand (within the grace), return the rest to the broker."""
        self._stopping = True
        for iterator in self._iterators:
            with contextlib.suppress(Exception):  # a closed channel has already returned its deliveries
                await iterator.close()
        if not self._tasks:
            return
        _, late = await asyncio.wait(self._tasks, timeout=self._settings.worker_shutdown_grace_s)
        for task in late:
            log.warning("shutdown_grace_exceeded", task=task.get_name())
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
