"""``ConfirmedPublisher``: puts envelopes on the broker with publisher confirms and ``mandatory``, and says, per
message, whether the broker took it, returned it, or could not be asked.

Why confirms: a publish without them is a write to a socket; a crash of the broker before it enqueued the message
loses it, and the sender never knows. With confirms the broker acks once the message is in every queue it routes
to (for a quorum queue: written by a majority), so the relay marks a row published only after the ack. Why
``mandatory``: a message no binding matches is otherwise dropped silently (and still acked); with ``mandatory``
the broker returns it first, and aio-pika (``on_return_raises=False``) hands the returned message back as the
publish's result, so the relay keeps the row and counts it instead of believing it was delivered.

Why each aggregate's messages one after another, and the aggregates side by side: a message is sent only after
its predecessor of the same aggregate was confirmed, so one returned or failed message stops its aggregate there
and the order a consumer sees is the outbox's; different aggregates do not wait for each other, so a batch costs
about one confirm round trip per message of its longest aggregate, not one per message. The channel is opened
once (aio-pika's robust channel reopens it after a reconnect) and the topology is declared on it first
(app/messaging/topology.py). See notes/rabbitmq.md, "Publisher confirms and mandatory".
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from aio_pika import DeliveryMode, Message
from aio_pika.abc import AbstractChannel, AbstractExchange, FieldValue
from aiormq.abc import DeliveredMessage

from app.messaging import topology
from app.messaging.amqp_connection import AmqpConnection
from app.messaging.envelope import EXCHANGE, Envelope
from app.settings import Settings


def amqp_message(envelope: Envelope) -> Message:
    """The AMQP message of an envelope: its id as ``message_id``, its type, and the trace headers when present."""
    headers: dict[str, FieldValue] = {}
    if envelope.traceparent is not None:
        headers["traceparent"] = envelope.traceparent
    if envelope.request_id is not None:
        headers["x-request-id"] = envelope.request_id
    return Message(
        envelope.model_dump_json().encode(),
        message_id=str(envelope.id),
        type=envelope.type,
        content_type="application/json",
        delivery_mode=DeliveryMode.PERSISTENT,
        timestamp=envelope.occurred_at,
        headers=headers,
    )


@dataclass
class Sent:
    """What became of a batch: ids the broker confirmed, ids it returned, and the first error that stopped an
    aggregate (the rest of that aggregate was not sent)."""

    confirmed: list[uuid.UUID] = field(default_factory=list)
    returned: list[uuid.UUID] = field(default_factory=list)
    error: BaseException | None = None


class ConfirmedPublisher:
    def __init__(self, amqp: AmqpConnection, settings: Settings) -> None:
        self._amqp = amqp
        self._settings = settings
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None

    async def _ready_exchange(self) -> AbstractExchange:
        if self._channel is None or self._channel.is_closed or self._exchange is None:
            channel = await self._amqp.robust_connection().channel(publisher_confirms=True, on_return_raises=False)
            try:
                await topology.declare(channel, self._settings)
            except BaseException:
                # Closed by us, so the robust channel does not restore itself and declare the refused queue again
                # in a loop (a changed argument stays refused: notes/rabbitmq.md, "Topology"); the next drain
                # opens a new channel and tries once more.
                with contextlib.suppress(Exception):
                    await channel.close()
                raise
            self._channel, self._exchange = channel, await channel.get_exchange(EXCHANGE, ensure=False)
        return self._exchange

    async def publish(self, aggregates: Sequence[Sequence[Envelope]]) -> Sent:
        """Each inner sequence (one aggregate's envelopes, in order) one by one; the aggregates concurrently."""
        exchange = await self._ready_exchange()
        sent = Sent()
        await asyncio.gather(*(self._publish_in_order(exchange, envelopes, sent) for envelopes in aggregates))
        return sent

    async def _publish_in_order(self, exchange: AbstractExchange, envelopes: Sequence[Envelope], sent: Sent) -> None:
        for envelope in envelopes:
            try:
                result = await exchange.publish(
                    amqp_message(envelope),
                    routing_key=envelope.type,
                    mandatory=True,
                    timeout=self._settings.outbox_publish_timeout_s,
                )
            except Exception as error:  # kept; the relay re-raises it after marking what was confirmed
                sent.error = sent.error or error
                return
            if isinstance(result, DeliveredMessage):  # returned: no binding routes this type
                sent.returned.append(envelope.id)
                return
            sent.confirmed.append(envelope.id)

    async def aclose(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()
