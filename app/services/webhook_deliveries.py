"""Organizers' webhooks for ``booking.confirmed``: the consumer that delivers them, signed, and the list of attempts.

Why every attempt is a row: the organizer asks "did you tell me?", and the answer is the list of attempts with their
outcome and status. A successful attempt's row is written in the worker's transaction, beside the inbox row, so it
commits with "applied"; a failed attempt's row is committed on its own first (the worker's transaction rolls back
when ``apply`` raises, and the attempt must still be on record), then ``WebhookAttemptFailedError`` sends the
message to the next retry tier. The last allowed attempt records ``parked``, the worker parks the message.

What is retried: a 5xx, 408, 429, a timeout or a connection failure (the receiver may be back later); any other
status is the receiver's answer and is final (a 4xx will not change by asking again), recorded as ``failed``.
The HTTP call happens inside the worker's transaction, so it holds one pooled connection for at most the sender's
deadline (``webhook_deadline_s``); the webhooks queue's small prefetch bounds how many at once.
See notes/rabbitmq.md, "What users receive".
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

from sqlalchemy import Insert, func, insert, select

from app.db.models import Event, EventWebhook, WebhookDeliveryAttempt
from app.messaging.consumer import UnitOfWork
from app.messaging.envelope import BookingConfirmedV1, Envelope, payload_model
from app.messaging.topology import BINDINGS
from app.notifications.webhook_sender import DeliveryFailed, WebhookSender
from app.security.outbound_urls import UrlRefused
from app.security.webhook_signing import derive_secret, signature_headers
from app.services.unit_of_work import UnitOfWorkFactory
from app.services.webhooks import WebhookNotFoundError

RETRIED_STATUSES = frozenset({408, 429})
Outcome = Literal["delivered", "failed", "parked"]


class WebhookAttemptFailedError(Exception):
    """The receiver did not take the delivery this time; the worker retries it through the tiers."""


@dataclass(frozen=True)
class DeliveryRecord:
    id: int
    message_id: uuid.UUID
    message_type: str
    attempt: int
    outcome: Outcome
    status_code: int | None
    error: str | None
    created_at: datetime


def retried(status: int) -> bool:
    return status >= 500 or status in RETRIED_STATUSES


class WebhooksConsumer:
    """POSTs ``booking.confirmed`` to the event's webhook, signed with that webhook's secret."""

    queue = "webhooks"
    routing_keys = BINDINGS["webhooks"]

    def __init__(self, sender: WebhookSender, uows: UnitOfWorkFactory, *, signing_key: str, attempts: int) -> None:
        self._sender = sender
        self._uows = uows
        self._signing_key = signing_key
        self._attempts = attempts  # the first try and one per retry tier

    async def apply(self, message: Envelope, uow: UnitOfWork) -> None:
        payload = payload_model(message.type, message.version).model_validate(message.payload)
        if not isinstance(payload, BookingConfirmedV1):
            return
        hook = (
            await uow.session.execute(
                select(EventWebhook.url, EventWebhook.signing_salt).where(EventWebhook.event_id == payload.event_id)
            )
        ).one_or_none()
        if hook is None or hook.signing_salt is None:
            return  # no webhook (or one set before secrets existed: set it again to sign); nothing owed
        earlier = await uow.session.scalar(select(func.count()).where(WebhookDeliveryAttempt.message_id == message.id))
        attempt = int(earlier or 0) + 1
        body = {"type": message.type, "timestamp": message.occurred_at.isoformat(), "data": message.payload}
        secret = derive_secret(self._signing_key, hook.signing_salt)
        status: int | None = None
        try:
            delivery = await self._sender.deliver(
                hook.url, body, lambda raw: signature_headers(secret, str(message.id), int(time.time()), raw)
            )
            status = delivery.status
            error = None if 200 <= status < 300 else f"the receiver answered {status}"
        except (UrlRefused, DeliveryFailed) as failed:
            error = failed.reason
        if error is None or (status is not None and not retried(status)):
            outcome: Outcome = "delivered" if error is None else "failed"
            await uow.session.execute(self._row(message, payload.event_id, attempt, outcome, status, error))
            return
        outcome = "parked" if attempt >= self._attempts else "failed"
        async with self._uows() as record:  # on record even though the worker's transaction rolls back
            await record.session.execute(self._row(message, payload.event_id, attempt, outcome, status, error))
            await record.commit()
        raise WebhookAttemptFailedError(f"attempt {attempt}: {error}")

    @staticmethod
    def _row(
        message: Envelope, event_id: uuid.UUID, attempt: int, outcome: Outcome, status: int | None, error: str | None
    ) -> Insert:
        return insert(WebhookDeliveryAttempt).values(
            event_id=event_id,
            message_id=message.id,
            message_type=message.type,
            attempt=attempt,
            outcome=outcome,
            status_code=status,
            error=error,
        )


async def list_deliveries(
    uows: UnitOfWorkFactory, *, organizer_id: uuid.UUID, event_id: uuid.UUID, before: int | None, fetch: int
) -> list[DeliveryRecord]:
    """The event's delivery attempts, newest first (keyset on ``id``); ``WebhookNotFoundError`` unless the event is
    the caller's (another organizer's event and a missing one look the same)."""
    owned = select(Event.id).where((Event.id == event_id) & (Event.organizer_id == organizer_id))
    query = select(WebhookDeliveryAttempt).where(WebhookDeliveryAttempt.event_id == event_id)
    if before is not None:
        query = query.where(WebhookDeliveryAttempt.id < before)
    query = query.order_by(WebhookDeliveryAttempt.id.desc()).limit(fetch)
    async with uows() as uow:
        if (await uow.session.execute(owned)).one_or_none() is None:
            raise WebhookNotFoundError(event_id)
        rows = (await uow.session.scalars(query)).all()
        return [
            DeliveryRecord(
                r.id,
                r.message_id,
                r.message_type,
                r.attempt,
                cast(Outcome, r.outcome),
                r.status_code,
                r.error,
                r.created_at,
            )
            for r in rows
        ]
