"""The tables as SQLAlchemy models: users, events, seats, holds, bookings, idempotency keys, refresh tokens,
event webhooks, lease fences, the outbox.

Why these shapes: a seat row carries its own status and the hold that claims it, so "hold these seats" is one
conditional UPDATE on the primary that either claims every requested row or none (notes/postgres.md,
"Contention"). Public ids are UUIDs (no enumeration, no row counts leaked); money is integer cents; every time is
``timestamptz``. ``event.version`` is the ETag and the optimistic-concurrency guard for ``PATCH``
(notes/rest_design.md).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CHAR,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import CITEXT, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base

NEW_UUID = text("gen_random_uuid()")


class User(Base):
    __tablename__ = "app_user"  # "user" is reserved in PostgreSQL
    __table_args__ = (CheckConstraint("role in ('user', 'organizer')", name="role"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, server_default=NEW_UUID)
    email: Mapped[str] = mapped_column(CITEXT, unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16), server_default="user")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Event(Base):
    __tablename__ = "event"
    __table_args__ = (
        CheckConstraint("price_cents >= 0", name="price_cents"),
        CheckConstraint("rows between 1 and 100 and seats_per_row between 1 and 100", name="layout"),
        CheckConstraint("status in ('scheduled', 'cancelled')", name="status"),
        Index("ix_event_city_starts_at_id", "city", "starts_at", "id"),
        Index("ix_event_starts_at_id", "starts_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, server_default=NEW_UUID)
    organizer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("app_user.id"))
    title: Mapped[str] = mapped_column(Text)
    city: Mapped[str] = mapped_column(Text)
    venue: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime]
    price_cents: Mapped[int] = mapped_column(Integer)
    rows: Mapped[int] = mapped_column(SmallInteger)
    seats_per_row: Mapped[int] = mapped_column(SmallInteger)
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    status: Mapped[str] = mapped_column(String(16), server_default="scheduled")  # or 'cancelled'
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Hold(Base):
    __tablename__ = "hold"
    __table_args__ = (
        CheckConstraint("status in ('active', 'paying', 'booked', 'expired', 'released')", name="status"),
        Index("ix_hold_active_expires_at", "expires_at", postgresql_where=text("status = 'active'")),
        Index("ix_hold_user_id_status", "user_id", "status"),
        Index("ix_hold_paying_since", "paying_since", postgresql_where=text("status = 'paying'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, server_default=NEW_UUID)
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("event.id"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("app_user.id"))
    status: Mapped[str] = mapped_column(String(16), server_default="active")
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # The latest payment attempt, for reconciling an unknown outcome (notes/fault_tolerance.md): the provider
    # idempotency key (a card hash, never the card) and when the attempt began; null outside an attempt.
    payment_key: Mapped[str | None] = mapped_column(String(255))
    paying_since: Mapped[datetime | None]


class Seat(Base):
    __tablename__ = "seat"
    __table_args__ = (
        UniqueConstraint("event_id", "row", "number"),
        CheckConstraint("status in ('available', 'held', 'sold')", name="status"),
        CheckConstraint("(status = 'available') = (hold_id is null)", name="hold_matches_status"),
        Index("ix_seat_event_id_status", "event_id", "status"),
        Index("ix_seat_hold_id", "hold_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, server_default=NEW_UUID)
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("event.id"))
    row: Mapped[int] = mapped_column(SmallInteger)
    number: Mapped[int] = mapped_column(SmallInteger)
    status: Mapped[str] = mapped_column(String(16), server_default="available")
    hold_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("hold.id"))


class Booking(Base):
    __tablename__ = "booking"
    __table_args__ = (
        CheckConstraint("amount_cents >= 0", name="amount_cents"),
        CheckConstraint("status in ('confirmed')", name="status"),
        Index("ix_booking_user_id_created_at_id", "user_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, server_default=NEW_UUID)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("app_user.id"))
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("event.id"))
    hold_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hold.id"), unique=True)
    amount_cents: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), server_default="confirmed")
    payment_id: Mapped[str] = mapped_column(Text, unique=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class IdempotencyKey(Base):
    """The first response to a (user, key) pair, kept so a retry gets it back byte for byte."""

    __tablename__ = "idempotency_key"
    __table_args__ = (CheckConstraint("status in ('in_progress', 'completed')", name="status"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("app_user.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), server_default="in_progress")
    response_status: Mapped[int | None] = mapped_column(SmallInteger)
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class RefreshToken(Base):
    """One link of a refresh-token family; rotation spends a link and adds its successor (notes/security.md)."""

    __tablename__ = "refresh_token"
    __table_args__ = (Index("ix_refresh_token_family_id", "family_id"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, server_default=NEW_UUID)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("app_user.id"))
    family_id: Mapped[uuid.UUID] = mapped_column(UUID)
    token_hash: Mapped[str] = mapped_column(CHAR(64), unique=True)  # SHA-256 hex; never the token itself
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime]
    spent_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class EventWebhook(Base):
    """The organizer's notification URL for one event, vetted before it is stored (notes/security.md, "SSRF")."""

    __tablename__ = "event_webhook"
    __table_args__ = (CheckConstraint("length(url) <= 2048", name="url_length"),)

    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    # The signing secret is derived from this salt and the server's webhook key, never stored itself
    # (app/security/webhook_signing.py); a new salt, so a new secret, each time the URL is set
    signing_salt: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class InboxEntry(Base):
    """A message one consumer has applied, written in the transaction of its effect: a redelivered copy finds its
    row and is acknowledged without a second effect (app/worker/delivery.py; notes/rabbitmq.md, "The worker and its
    inbox")."""

    __tablename__ = "inbox"
    __table_args__ = (Index("ix_inbox_applied_at", "applied_at"),)  # pruning reads the oldest first

    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    message_type: Mapped[str] = mapped_column(String(64))
    applied_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Notification(Base):
    """What a buyer is told (booking confirmed, hold expired, payment settled): one row per message, at most."""

    __tablename__ = "notification"
    __table_args__ = (
        CheckConstraint("kind in ('booking-confirmed', 'hold-expired', 'payment-settled')", name="kind"),
        Index("ix_notification_user_id_created_at_id", "user_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, server_default=NEW_UUID)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("app_user.id"))
    message_id: Mapped[uuid.UUID] = mapped_column(UUID, unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID)
    booking_id: Mapped[uuid.UUID | None] = mapped_column(UUID)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class WebhookDeliveryAttempt(Base):
    """One attempt to deliver one message to an event's webhook, whatever its outcome (what the organizer sees)."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        CheckConstraint("outcome in ('delivered', 'failed', 'parked')", name="outcome"),
        Index("ix_webhook_delivery_event_id_id", "event_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"))
    message_id: Mapped[uuid.UUID] = mapped_column(UUID)
    message_type: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(SmallInteger)
    outcome: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int | None] = mapped_column(SmallInteger)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class LeaseFence(Base):
    """The newest fencing token seen for one Redis lease; a leased job's write with an older one is refused
    (app/db/fences.py, notes/redis.md, "A lease with fencing tokens")."""

    __tablename__ = "lease_fence"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    token: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class OutboxMessage(Base):
    """A message a committed change owes the broker, written in that change's transaction and published by the
    relay (app/messaging/outbox.py, app/messaging/outbox_relay.py, notes/rabbitmq.md, "The outbox and its relay")."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_unpublished", "partition", "id", postgresql_where=text("published_at IS NULL")),
        Index("ix_outbox_published_at", "published_at", postgresql_where=text("published_at IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    message_id: Mapped[uuid.UUID] = mapped_column(UUID, unique=True, server_default=NEW_UUID)
    type: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(SmallInteger)
    aggregate_type: Mapped[str] = mapped_column(String(32))
    aggregate_id: Mapped[uuid.UUID] = mapped_column(UUID)
    partition: Mapped[int] = mapped_column(SmallInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    request_id: Mapped[str | None] = mapped_column(String(128))
    traceparent: Mapped[str | None] = mapped_column(String(55))
    occurred_at: Mapped[datetime] = mapped_column(server_default=func.now())
    published_at: Mapped[datetime | None]
    returned_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
