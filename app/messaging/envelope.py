"""The message every domain event travels in, and the versioned payload model of each message type.

Why an envelope apart from the payload: the relay, the worker's inbox and the trace context need the same few
fields for every message (the id that makes redelivery harmless, the type that routes it, the aggregate whose order
matters, the request that caused it), while each payload changes on its own schedule. A payload is validated by its
model twice: when the outbox row is written (a bad payload fails the writing transaction, not a consumer hours
later) and when a consumer reads it. A new field that old consumers may ignore keeps version 1; a change that would
break them is a new model under version 2, and both are registered until the old one has drained.
See notes/rabbitmq.md, "The outbox and its relay".
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

EXCHANGE = "refstack.events"


class Envelope(BaseModel):
    """One JSON document per AMQP message; ``id`` is also the AMQP ``message_id`` and the inbox key."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    type: str
    version: int
    occurred_at: datetime
    aggregate_type: str
    aggregate_id: uuid.UUID
    request_id: str | None
    traceparent: str | None
    payload: dict[str, Any]


class Payload(BaseModel):
    """Base of every payload: frozen, and strict about unknown fields so a typo fails where it is written."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class EventChangedV1(Payload):
    """event.created / event.updated / event.cancelled: the event as it is after the change."""

    event_id: uuid.UUID
    organizer_id: uuid.UUID
    title: str
    city: str
    venue: str
    starts_at: datetime
    price_cents: int
    version: int
    status: Literal["scheduled", "cancelled"]


class HoldPlacedV1(Payload):
    hold_id: uuid.UUID
    event_id: uuid.UUID
    user_id: uuid.UUID
    seat_ids: list[uuid.UUID]
    expires_at: datetime


class HoldEndedV1(Payload):
    """hold.expired / hold.released: which hold, for whom."""

    hold_id: uuid.UUID
    event_id: uuid.UUID
    user_id: uuid.UUID


class BookingConfirmedV1(Payload):
    booking_id: uuid.UUID
    hold_id: uuid.UUID
    event_id: uuid.UUID
    user_id: uuid.UUID
    amount_cents: int
    seat_ids: list[uuid.UUID]


class PaymentSettledV1(Payload):
    """Written by the reconciler when it settles an outcome the booking request never learnt."""

    hold_id: uuid.UUID
    event_id: uuid.UUID
    user_id: uuid.UUID
    outcome: Literal["booked", "released"]
    booking_id: uuid.UUID | None


_MODELS: dict[tuple[str, int], type[Payload]] = {
    ("event.created", 1): EventChangedV1,
    ("event.updated", 1): EventChangedV1,
    ("event.cancelled", 1): EventChangedV1,
    ("hold.placed", 1): HoldPlacedV1,
    ("hold.expired", 1): HoldEndedV1,
    ("hold.released", 1): HoldEndedV1,
    ("booking.confirmed", 1): BookingConfirmedV1,
    ("payment.settled", 1): PaymentSettledV1,
}

MESSAGE_TYPES: tuple[str, ...] = tuple(sorted({message_type for message_type, _ in _MODELS}))

# The aggregate whose order a type belongs to, and the payload field holding its id: a booking and a payment
# settlement are steps of their hold's lifecycle, so they are ordered with the hold's other messages.
_AGGREGATE_OF: dict[str, tuple[str, str]] = {
    "event": ("event", "event_id"),
    "hold": ("hold", "hold_id"),
    "booking": ("hold", "hold_id"),
    "payment": ("hold", "hold_id"),
}


class UnknownMessageTypeError(LookupError):
    """No payload model is registered for this (type, version)."""


def payload_model(message_type: str, version: int) -> type[Payload]:
    """The model that validates ``message_type`` at ``version``; raises ``UnknownMessageTypeError`` otherwise."""
    try:
        return _MODELS[(message_type, version)]
    except KeyError:
        raise UnknownMessageTypeError(f"no payload model for {message_type!r} version {version}") from None


def aggregate_of(message_type: str, payload: Payload) -> tuple[str, uuid.UUID]:
    """``(aggregate_type, aggregate_id)`` of a message: whose messages it must stay in order with."""
    aggregate_type, field = _AGGREGATE_OF[message_type.split(".", 1)[0]]
    aggregate_id = getattr(payload, field)
    if not isinstance(aggregate_id, uuid.UUID):
        raise TypeError(f"{type(payload).__name__} has no {field}")
    return aggregate_type, aggregate_id


def latest_version(message_type: str) -> int:
    """The version a writer uses today for ``message_type``."""
    versions = [version for known, version in _MODELS if known == message_type]
    if not versions:
        raise UnknownMessageTypeError(f"no payload model for {message_type!r}")
    return max(versions)
