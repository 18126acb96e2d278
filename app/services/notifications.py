"""A buyer's notifications: the consumer that writes them from domain messages, and the page that lists them.

Why a consumer writes rows and the API only reads them: the booking request must not wait for, or fail with, the
work of telling someone about it. The message arrives at least once; the worker's inbox row, written in the same
transaction as the notification, makes it appear once (and ``notification.message_id`` is unique besides, so even a
bypassed inbox could not double it). Types this consumer does not render (``hold.placed``, ``hold.released``) are
acknowledged with nothing written: its queue binds the whole ``hold.#`` family so that every type stays routable.
See notes/rabbitmq.md, "What users receive".
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

from sqlalchemy import select, tuple_
from sqlalchemy.dialects.postgresql import insert

from app.db.models import Notification
from app.messaging.consumer import UnitOfWork
from app.messaging.envelope import BookingConfirmedV1, Envelope, HoldEndedV1, PaymentSettledV1, payload_model
from app.messaging.topology import BINDINGS
from app.services.unit_of_work import UnitOfWorkFactory

NotificationKind = Literal["booking-confirmed", "hold-expired", "payment-settled"]


@dataclass(frozen=True)
class NotificationRecord:
    id: uuid.UUID
    kind: NotificationKind
    text: str
    event_id: uuid.UUID
    booking_id: uuid.UUID | None
    created_at: datetime


@dataclass(frozen=True)
class Rendered:
    user_id: uuid.UUID
    kind: NotificationKind
    text: str
    event_id: uuid.UUID
    booking_id: uuid.UUID | None


def render(message: Envelope) -> Rendered | None:
    """The notification a message means for its buyer, or None for a type buyers are not told about."""
    if message.type not in ("booking.confirmed", "hold.expired", "payment.settled"):
        return None
    payload = payload_model(message.type, message.version).model_validate(message.payload)
    if isinstance(payload, BookingConfirmedV1):
        euros = f"{payload.amount_cents // 100}.{payload.amount_cents % 100:02d}"
        text = f"Booking confirmed: {len(payload.seat_ids)} seat(s), {euros} paid."
        return Rendered(payload.user_id, "booking-confirmed", text, payload.event_id, payload.booking_id)
    if isinstance(payload, HoldEndedV1):
        text = "Your hold expired before it was paid; the seats are available again."
        return Rendered(payload.user_id, "hold-expired", text, payload.event_id, None)
    if isinstance(payload, PaymentSettledV1):
        text = (
            "Your payment went through after all: the booking is confirmed."
            if payload.outcome == "booked"
            else "Your payment did not go through; nothing was charged and the seats were released."
        )
        return Rendered(payload.user_id, "payment-settled", text, payload.event_id, payload.booking_id)
    raise TypeError(f"no rendering for {message.type} version {message.version}")


class NotificationsConsumer:
    """Writes the buyer's notification for booking.confirmed, hold.expired and payment.settled."""

    queue = "notifications"
    routing_keys = BINDINGS["notifications"]

    async def apply(self, message: Envelope, uow: UnitOfWork) -> None:
        rendered = render(message)
        if rendered is None:
            return
        statement = insert(Notification).values(
            user_id=rendered.user_id,
            message_id=message.id,
            kind=rendered.kind,
            text=rendered.text,
            event_id=rendered.event_id,
            booking_id=rendered.booking_id,
        )
        await uow.session.execute(statement.on_conflict_do_nothing(index_elements=[Notification.message_id]))


async def list_notifications(
    uows: UnitOfWorkFactory, *, user_id: uuid.UUID, before: tuple[datetime, uuid.UUID] | None, fetch: int
) -> list[NotificationRecord]:
    """Newest first, keyset on ``(created_at, id)`` (the index ``ix_notification_user_id_created_at_id``)."""
    query = select(Notification).where(Notification.user_id == user_id)
    if before is not None:
        query = query.where(tuple_(Notification.created_at, Notification.id) < tuple_(*before))
    query = query.order_by(Notification.created_at.desc(), Notification.id.desc()).limit(fetch)
    async with uows() as uow:
        rows = (await uow.session.scalars(query)).all()
        return [
            NotificationRecord(r.id, cast(NotificationKind, r.kind), r.text, r.event_id, r.booking_id, r.created_at)
            for r in rows
        ]
