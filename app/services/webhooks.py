"""Use cases for an event's notification webhook: set (vetted), read, remove, ping — only by the event's organizer.

Why ownership lives inside each statement: "the event exists and is yours" is a join on
``event.organizer_id = :caller`` in the same statement that reads or writes the webhook, so no route can forget the
check and there is no window between checking and writing. Another organizer's event and a missing event look the
same (``WebhookNotFoundError``, a 404): the webhook is private even though the event is public. The policy's and
the sender's own exceptions stop here and leave as this module's errors. The URL is vetted
by the ``OutboundUrlPolicy`` before it is stored and again, with every redirect, when the sender delivers.
See notes/security.md, "SSRF", and "Object-level authorization".
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, delete, func, literal, select
from sqlalchemy.dialects.postgresql import insert

from app.db.models import Event, EventWebhook
from app.notifications.webhook_sender import Delivery, DeliveryFailed, WebhookSender
from app.security.outbound_urls import UrlRefused
from app.security.webhook_signing import derive_secret, new_salt, shown_secret
from app.services.unit_of_work import UnitOfWorkFactory


@dataclass(frozen=True)
class WebhookRecord:
    event_id: uuid.UUID
    url: str
    updated_at: datetime


@dataclass(frozen=True)
class NewWebhook:
    """A webhook just set, and its new signing secret as the organizer sees it: in this answer and never again."""

    record: WebhookRecord
    secret: str


class WebhookUrlRefusedError(ValueError):
    """The URL may not be called (SSRF policy); ``reason`` is safe to show the organizer who gave it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WebhookNotDeliveredError(Exception):
    """The ping got no usable answer, including a redirect towards a refused address; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WebhookNotFoundError(LookupError):
    """No such event among the caller's own, or it has no webhook."""

    def __init__(self, event_id: uuid.UUID) -> None:
        super().__init__(f"no webhook for event {event_id}")
        self.event_id = event_id


def _owned_event(organizer_id: uuid.UUID, event_id: uuid.UUID) -> ColumnElement[bool]:
    return (Event.id == event_id) & (Event.organizer_id == organizer_id)


async def set_webhook(
    uows: UnitOfWorkFactory,
    sender: WebhookSender,
    *,
    signing_key: str,
    organizer_id: uuid.UUID,
    event_id: uuid.UUID,
    url: str,
) -> NewWebhook:
    """Vet ``url`` (``UrlRefused`` if it may not be called), then store it for the caller's event in one upsert,
    with a new salt: setting the URL again rotates the signing secret."""
    try:
        vetted = await sender.policy.vet(url)
    except UrlRefused as refused:
        raise WebhookUrlRefusedError(refused.reason) from None
    stored, salt = str(vetted.url), new_salt()
    values = select(Event.id, literal(stored), literal(salt)).where(_owned_event(organizer_id, event_id))
    upsert = insert(EventWebhook).from_select(["event_id", "url", "signing_salt"], values)
    statement = upsert.on_conflict_do_update(
        index_elements=[EventWebhook.event_id],
        set_={"url": upsert.excluded.url, "signing_salt": upsert.excluded.signing_salt, "updated_at": func.now()},
    ).returning(EventWebhook.event_id, EventWebhook.url, EventWebhook.updated_at)
    async with uows() as uow:
        row = (await uow.session.execute(statement)).one_or_none()
        if row is None:
            raise WebhookNotFoundError(event_id)
        await uow.commit()
    record = WebhookRecord(row.event_id, row.url, row.updated_at)
    return NewWebhook(record, shown_secret(derive_secret(signing_key, salt)))


async def get_webhook(uows: UnitOfWorkFactory, *, organizer_id: uuid.UUID, event_id: uuid.UUID) -> WebhookRecord:
    query = (
        select(EventWebhook.event_id, EventWebhook.url, EventWebhook.updated_at)
        .join(Event, Event.id == EventWebhook.event_id)
        .where(_owned_event(organizer_id, event_id))
    )
    async with uows() as uow:
        row = (await uow.session.execute(query)).one_or_none()
    if row is None:
        raise WebhookNotFoundError(event_id)
    return WebhookRecord(row.event_id, row.url, row.updated_at)


async def remove_webhook(uows: UnitOfWorkFactory, *, organizer_id: uuid.UUID, event_id: uuid.UUID) -> None:
    owned = select(Event.id).where(_owned_event(organizer_id, event_id)).scalar_subquery()
    statement = delete(EventWebhook).where(EventWebhook.event_id == owned).returning(EventWebhook.event_id)
    async with uows() as uow:
        if (await uow.session.execute(statement)).one_or_none() is None:
            raise WebhookNotFoundError(event_id)
        await uow.commit()


async def ping_webhook(
    uows: UnitOfWorkFactory, sender: WebhookSender, *, organizer_id: uuid.UUID, event_id: uuid.UUID
) -> Delivery:
    """Send a ``ping`` notification to the stored URL, outside any transaction (the receiver may be slow)."""
    webhook = await get_webhook(uows, organizer_id=organizer_id, event_id=event_id)
    payload = {"type": "ping", "event_id": str(event_id), "sent_at": datetime.now(UTC).isoformat()}
    try:
        return await sender.deliver(webhook.url, payload)
    except (UrlRefused, DeliveryFailed) as failed:
        raise WebhookNotDeliveredError(failed.reason) from None
