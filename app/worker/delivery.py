"""One delivery, start to finish: the inbox row and the effect in one transaction, then the ack; or the next tier.

Why this order: the effect and the inbox row (consumer, message id) commit together, and the ack is sent only after
the commit. A crash before the commit rolls both back and the broker redelivers (the effect happens then, once). A
crash between the commit and the ack also redelivers, and the redelivered copy finds its inbox row and is only
acknowledged: at-least-once on the wire, exactly once in effect. The inbox insert comes first, so two copies handled
at once by two workers serialise on its primary key, and the second waits, then finds the row.

Why an unreachable database is waited for in place and not retried through the tiers: it is not the message's
fault, and every message would fail the same way, so an outage longer than the tiers would park the whole backlog.
The handler keeps the delivery (unacknowledged) and runs the transaction again under full-jitter backoff
(app/resilience/retry.py) until the database answers or the worker stops; the queue grows meanwhile, which is the
backlog an operator watches. RabbitMQ's ``consumer_timeout`` (30 min by default) bounds how long a delivery may stay
unacknowledged: past it the broker closes the channel and redelivers (notes/rabbitmq.md, "Consumer timeout").

Why a failure is republished rather than rejected: dead-lettering cannot change a header, and the tier is chosen by
how often the message has failed (``x-refstack-failures``). The copy goes to the consumer's next retry queue (or its
parking lot after the last tier) with publisher confirms and ``mandatory``, and only when the broker has confirmed
it is the original acknowledged; if that publish fails, the original is returned to its queue instead (and counts
toward ``x-delivery-limit``). A body that is not an envelope at all can never succeed and is parked at once.

Each delivery's log lines carry the envelope's request id and trace id (structlog contextvars), so a booking's
request id leads from the app's access log to the worker's lines about its notification.
See notes/rabbitmq.md, "The worker and its inbox" and "Retries, parking and poison messages".
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from aio_pika import DeliveryMode, Message
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage, FieldValue
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError

from app.db.engines import DatabaseUnreachable
from app.db.models import InboxEntry
from app.messaging.consumer import Consumer
from app.messaging.envelope import Envelope
from app.messaging.topology import ConsumerQueues
from app.resilience.retry import full_jitter_retrying
from app.services.unit_of_work import UnitOfWorkFactory
from app.worker.metrics import WorkerMetrics

log = structlog.get_logger(__name__)

FAILURES_HEADER = "x-refstack-failures"
ERROR_HEADER = "x-refstack-error"
_ERROR_CHARS = 500
# Waiting for the database: attempts are bounded only by the stop (a cancelled handler ends the wait)
_DB_WAIT_ATTEMPTS = 1_000_000
_DB_WAIT_BASE_S = 0.1
_DB_WAIT_MAX_S = 2.0


def database_down(error: BaseException) -> bool:
    """No connection, a connection lost mid-transaction, or no answer within the client's command timeout."""
    if isinstance(error, DBAPIError):
        return bool(error.connection_invalidated) or isinstance(error.orig, (OSError, TimeoutError))
    return isinstance(error, (DatabaseUnreachable, OSError, TimeoutError))


def copy_of(message: AbstractIncomingMessage, headers: dict[str, FieldValue]) -> Message:
    """The same message (body, id, type) with ``headers``, persistent: what a retry tier, the parking lot and a replay
    from it publish (app/worker/replay.py)."""
    return Message(
        message.body,
        headers=headers,
        content_type=message.content_type,
        message_id=message.message_id,
        type=message.type,
        delivery_mode=DeliveryMode.PERSISTENT,
    )


def failures_so_far(message: AbstractIncomingMessage) -> int:
    value = (message.headers or {}).get(FAILURES_HEADER, 0)
    return value if isinstance(value, int) and value >= 0 else 0


def trace_id_of(traceparent: str | None) -> str | None:
    parts = traceparent.split("-") if traceparent else []
    return parts[1] if len(parts) == 4 else None


@dataclass(frozen=True)
class DeliveryHandler:
    """Applies one consumer's deliveries; ``retries`` is the confirmed channel's exchange for tiers and parking."""

    consumer: Consumer
    queues: ConsumerQueues
    uows: UnitOfWorkFactory
    retries: AbstractExchange
    metrics: WorkerMetrics

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        name = self.consumer.queue
        self.metrics.count(name, "consumed")
        try:
            envelope = Envelope.model_validate_json(message.body)
        except ValidationError as invalid:
            log.error("message_unreadable", consumer=name, message_id=message.message_id, error=str(invalid)[:200])
            if await self._send_on(message, self.queues.parking, failures_so_far(message) + 1, "not an envelope"):
                self.metrics.count(name, "parked")
            return
        context = {
            "consumer": name,
            "message_id": str(envelope.id),
            "message_type": envelope.type,
            "request_id": envelope.request_id,
            "trace_id": trace_id_of(envelope.traceparent),
        }
        with structlog.contextvars.bound_contextvars(**context):
            await self._handle(message, envelope)

    async def _handle(self, message: AbstractIncomingMessage, envelope: Envelope) -> None:
        name = self.consumer.queue
        try:
            applied = await self._apply_waiting_for_the_database(envelope)
        except Exception as error:  # any failure of the effect: the tiers decide what happens next
            failures = failures_so_far(message) + 1
            route = self.queues.after_failure(failures)
            if await self._send_on(message, route, failures, f"{type(error).__name__}: {error}"):
                parked = route == self.queues.parking
                self.metrics.count(name, "parked" if parked else "retried")
                log.warning(
                    "message_parked" if parked else "message_retried", failures=failures, to=route, error=str(error)
                )
            return
        await message.ack()
        self.metrics.count(name, "applied" if applied else "duplicate")
        log.info("message_applied" if applied else "message_duplicate", redelivered=message.redelivered)

    async def _apply_waiting_for_the_database(self, envelope: Envelope) -> bool:
        retrying = full_jitter_retrying(
            max_attempts=_DB_WAIT_ATTEMPTS,
            deadline_s=None,
            backoff_base_s=_DB_WAIT_BASE_S,
            backoff_max_s=_DB_WAIT_MAX_S,
            retry_if=database_down,
        )
        return bool(await retrying(self._apply_once_noting_an_outage, envelope))

    async def _apply_once_noting_an_outage(self, envelope: Envelope) -> bool:
        try:
            return await self._apply_once(envelope)
        except Exception as error:
            if database_down(error):
                log.warning("database_unreachable_waiting", error=str(error) or type(error).__name__)
            raise

    async def _apply_once(self, envelope: Envelope) -> bool:
        """The inbox row and the effect in one transaction; False when the inbox already had this message."""
        row = {"consumer": self.consumer.queue, "message_id": envelope.id, "message_type": envelope.type}
        claim = insert(InboxEntry).values(row).on_conflict_do_nothing().returning(InboxEntry.message_id)
        async with self.uows() as uow:
            if (await uow.session.execute(claim)).first() is None:
                return False
            await self.consumer.apply(envelope, uow)
            await uow.commit()
        return True

    async def _send_on(self, message: AbstractIncomingMessage, route: str, failures: int, error: str) -> bool:
        """Publish a copy to ``route`` (confirmed, mandatory), then ack the original; return the original to its
        queue instead if the broker did not confirm the copy (False)."""
        copy = copy_of(
            message, {**(message.headers or {}), FAILURES_HEADER: failures, ERROR_HEADER: error[:_ERROR_CHARS]}
        )
        try:
            await self.retries.publish(copy, routing_key=route, mandatory=True)
        except Exception:  # not confirmed (a timeout, a lost link, a return): the original must not be acked
            log.exception("retry_publish_failed", to=route)
            await message.nack(requeue=True)
            return False
        await message.ack()
        return True
