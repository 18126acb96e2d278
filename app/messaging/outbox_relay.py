"""``OutboxRelay``: moves committed outbox rows to the broker, at least once, in order per aggregate.

Why a relay and at-least-once: the row was committed with the change (app/messaging/outbox.py); the relay
publishes it with confirms and marks it published only after the broker's ack, in the transaction that holds the
row's partition (app/messaging/outbox_store.py). A relay that dies between the ack and its commit leaves the row
unpublished, and the next relay sends it again: a duplicate on the wire with the same ``message_id``, which the
consumers' inbox absorbs. Nothing is lost, and nothing is marked that the broker did not take.

When it runs: ``drain`` is called on every ``NOTIFY outbox`` (app/messaging/outbox_listener.py: a change is on the
wire milliseconds after its commit) and by the app's one periodic-job runner every poll interval (the safety net
for a missed notification, a dropped listen connection, a broker that was down). Calls that arrive while a drain
runs are folded into one more pass of that drain. A drain asks which partitions wait (which also feeds the backlog
gauges at ``/metrics``), then publishes each one it can lock, batch after batch, until none is left.

What it does with a broker that cannot take messages (down, link cut, paused, or blocking publishers under a memory
or disk alarm): a publish fails or times out, the drain stops and retries with full-jitter backoff through the one
retry factory (app/resilience/retry.py); after the last attempt it waits for the next poll or notification. The API
is unaffected either way: requests only ever write rows. See notes/rabbitmq.md, "The outbox and its relay" and
"Flow control and alarms".
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import aiormq
import structlog
from aio_pika.exceptions import AMQPError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.pruning import prune_in_batches
from app.db.transaction import UnitOfWorkOpener
from app.messaging import outbox_store
from app.messaging.amqp_connection import AmqpNotConnectedError
from app.messaging.confirmed_publisher import Sent
from app.messaging.envelope import Envelope
from app.observability.metrics import OutboxMetrics
from app.resilience.retry import full_jitter_retrying
from app.settings import Settings

log = structlog.get_logger(__name__)
BROKER_FAILURES = (AmqpNotConnectedError, AMQPError, aiormq.exceptions.AMQPError, ConnectionError, TimeoutError)


class BatchPublisher(Protocol):
    """Publishes aggregates' envelopes (each aggregate's in order) and says what became of each."""

    async def publish(self, aggregates: Sequence[Sequence[Envelope]]) -> Sent: ...


@dataclass(frozen=True)
class RelayBounds:
    batch: int
    retry_attempts: int
    backoff_base_s: float
    backoff_max_s: float

    @classmethod
    def of(cls, settings: Settings) -> RelayBounds:
        return cls(
            batch=settings.outbox_batch,
            retry_attempts=settings.outbox_retry_attempts,
            backoff_base_s=settings.outbox_backoff_base_s,
            backoff_max_s=settings.outbox_backoff_max_s,
        )


def by_aggregate(envelopes: Sequence[Envelope]) -> list[list[Envelope]]:
    """The batch split per aggregate, each in the batch's (id) order."""
    groups: dict[object, list[Envelope]] = {}
    for envelope in envelopes:
        groups.setdefault(envelope.aggregate_id, []).append(envelope)
    return list(groups.values())


class OutboxRelay:
    def __init__(
        self, uows: UnitOfWorkOpener, publisher: BatchPublisher, bounds: RelayBounds, metrics: OutboxMetrics
    ) -> None:
        self._uows = uows
        self._publisher = publisher
        self._bounds = bounds
        self._metrics = metrics
        self._draining = asyncio.Lock()
        self._wanted = False

    async def drain(self) -> int:
        """Publish everything unpublished that no other relay is publishing; how many messages this call sent."""
        self._wanted = True
        if self._draining.locked():
            return 0  # the running drain goes round once more
        published = 0
        async with self._draining:
            while self._wanted:
                self._wanted = False
                published += await self._drain_with_backoff()
        return published

    async def _drain_with_backoff(self) -> int:
        retrying = full_jitter_retrying(
            max_attempts=self._bounds.retry_attempts,
            deadline_s=None,
            backoff_base_s=self._bounds.backoff_base_s,
            backoff_max_s=self._bounds.backoff_max_s,
            retry_if=lambda error: isinstance(error, BROKER_FAILURES),
        )
        try:
            published: int = await retrying(self._drain_all)
        except BROKER_FAILURES as error:
            log.warning("outbox_relay_broker_unavailable", error=repr(error))
            return 0
        return published

    async def _drain_all(self) -> int:
        """Pass over the waiting partitions until a pass publishes nothing; a partition whose batch had a message
        returned sits out the rest of this drain (its aggregate stopped there; the next drain tries again)."""
        published = 0
        stalled: set[int] = set()
        while True:
            async with self._uows() as uow:
                waiting = await outbox_store.backlog(uow.session)
            self._metrics.observe_backlog(messages=waiting.messages, oldest_age_s=waiting.oldest_age_s)
            partitions = [partition for partition in waiting.partitions if partition not in stalled]
            progressed = False
            # from a random start, so relays that begin together lock different partitions first
            start = random.randrange(len(partitions)) if partitions else 0  # noqa: S311 - spreading work only
            for partition in partitions[start:] + partitions[:start]:
                sent = await self._publish_partition(partition)
                published += len(sent.confirmed)
                progressed = progressed or bool(sent.confirmed)
                if sent.returned:
                    stalled.add(partition)
            if not progressed:  # nothing left, or what is left is locked by other relays or stalled
                return published

    async def _publish_partition(self, partition: int) -> Sent:
        async with self._uows() as uow:
            if not await outbox_store.lock_partition(uow.session, partition):
                return Sent()
            batch = await outbox_store.next_batch(uow.session, partition, self._bounds.batch)
            if not batch:
                return Sent()
            sent = await self._publisher.publish(by_aggregate(batch))
            await outbox_store.mark_published(uow.session, sent.confirmed)
            await outbox_store.mark_returned(uow.session, sent.returned)
            await uow.commit()
        self._metrics.count("published", len(sent.confirmed))
        self._metrics.count("returned", len(sent.returned))
        if sent.returned:
            log.error("outbox_messages_returned", partition=partition, returned=len(sent.returned))
        if sent.error is not None:
            self._metrics.count("failed", len(batch) - len(sent.confirmed) - len(sent.returned))
            raise sent.error
        return sent

    async def prune_once(self, *, older_than_s: float, batch: int) -> int:
        """Delete published rows older than the retention, ``batch`` per transaction, until none is due."""

        async def one_batch(session: AsyncSession, limit: int) -> int:
            return await outbox_store.prune(session, older_than_s=older_than_s, limit=limit)

        return await prune_in_batches(self._uows, one_batch, batch=batch)
