"""Use cases for events and their seats: create (with every seat, in one transaction), read, list, patch.

Why these statements: creating an event writes the event and all ``rows × seats_per_row`` seats in one
transaction with one ``INSERT … SELECT generate_series``, so a failure leaves neither. The list computes
``seats_available`` in the same query (a correlated count served by ``ix_seat_event_id_status``), never one
query per event. A patch bumps ``version`` in ``UPDATE … WHERE id = :id AND version = :v``: of two concurrent
patches from the same version, the second waits for the row lock, re-reads the row, finds the version moved and
updates nothing. Reads run on the primary for now (read-your-writes for free); they move to the replica router
with notes/db_scaling.md. Cancelling is a patch of ``status`` to ``cancelled`` under the same version guard; a
cancelled event takes no further patch and no new hold (``EventCancelledError``). Every create and patch appends
its ``event.created`` / ``event.updated`` / ``event.cancelled`` message in its own transaction (``uow.outbox``,
notes/rabbitmq.md, "The outbox and its relay"). See notes/rest_design.md and notes/postgres.md, "Contention".
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, insert, literal, select, tuple_, update
from sqlalchemy.dialects.postgresql import UUID

from app.db.models import Event, Seat
from app.domain.seats import SeatStatus
from app.messaging.envelope import EventChangedV1
from app.services.unit_of_work import UnitOfWorkFactory

SCHEDULED, CANCELLED = "scheduled", "cancelled"
EventKey = tuple[datetime, uuid.UUID]
"""The list's sort key, ``(starts_at, id)``: unique, so keyset pages never tie."""


@dataclass(frozen=True)
class NewEvent:
    title: str
    city: str
    venue: str
    starts_at: datetime
    price_cents: int
    rows: int
    seats_per_row: int


@dataclass(frozen=True)
class EventRecord:
    id: uuid.UUID
    organizer_id: uuid.UUID
    title: str
    city: str
    venue: str
    starts_at: datetime
    price_cents: int
    rows: int
    seats_per_row: int
    version: int
    status: str = SCHEDULED


@dataclass(frozen=True)
class EventListing:
    id: uuid.UUID
    title: str
    city: str
    venue: str
    starts_at: datetime
    price_cents: int
    seats_available: int

    @property
    def key(self) -> EventKey:
        return self.starts_at, self.id


@dataclass(frozen=True)
class EventFilter:
    city: str | None = None
    starts_after: datetime | None = None
    starts_before: datetime | None = None


@dataclass(frozen=True)
class SeatRecord:
    id: uuid.UUID
    row: int
    number: int
    status: SeatStatus


class EventNotFoundError(LookupError):
    """No event has this id."""

    def __init__(self, event_id: uuid.UUID) -> None:
        super().__init__(f"no event {event_id}")
        self.event_id = event_id


class NotEventOrganizerError(PermissionError):
    """The caller is an organizer, but not the one who created this event."""


class EventCancelledError(Exception):
    """The event is cancelled: it takes no further change and no new hold."""

    def __init__(self, event_id: uuid.UUID) -> None:
        super().__init__(f"event {event_id} is cancelled")
        self.event_id = event_id


class StaleVersionError(Exception):
    """The event changed since the version the caller read (or ``If-Match`` named no version of it)."""


def _record(event: Event) -> EventRecord:
    return EventRecord(
        id=event.id,
        organizer_id=event.organizer_id,
        title=event.title,
        city=event.city,
        venue=event.venue,
        starts_at=event.starts_at,
        price_cents=event.price_cents,
        rows=event.rows,
        seats_per_row=event.seats_per_row,
        version=event.version,
        status=event.status,
    )


def _changed(event: Event) -> EventChangedV1:
    """The payload of event.created / event.updated / event.cancelled: the event as the change left it."""
    return EventChangedV1(
        event_id=event.id,
        organizer_id=event.organizer_id,
        title=event.title,
        city=event.city,
        venue=event.venue,
        starts_at=event.starts_at,
        price_cents=event.price_cents,
        version=event.version,
        status=CANCELLED if event.status == CANCELLED else SCHEDULED,
    )


async def create_event(uows: UnitOfWorkFactory, organizer_id: uuid.UUID, new: NewEvent) -> EventRecord:
    """The event and its seats, numbered ``row`` 1..rows × ``number`` 1..seats_per_row, all available."""
    async with uows() as uow:
        inserted = insert(Event).values(organizer_id=organizer_id, **vars(new)).returning(Event)
        event = (await uow.session.execute(inserted)).scalar_one()
        row = func.generate_series(1, new.rows).table_valued("value").render_derived(name="r")
        number = func.generate_series(1, new.seats_per_row).table_valued("value").render_derived(name="n")
        layout = select(literal(event.id, UUID), row.c.value, number.c.value)
        await uow.session.execute(insert(Seat).from_select(["event_id", "row", "number"], layout))
        await uow.outbox.add("event.created", _changed(event))
        await uow.commit()
    return _record(event)


async def find_event(uows: UnitOfWorkFactory, event_id: uuid.UUID) -> EventRecord | None:
    """The event, or None when no event has this id (the cache stores that answer too)."""
    async with uows.read() as session:  # one autocommit statement; record it before the session closes
        event = await session.get(Event, event_id)
        return None if event is None else _record(event)


async def count_available_seats(uows: UnitOfWorkFactory, event_id: uuid.UUID) -> int | None:
    """How many seats of the event are available now; None when no event has this id."""
    available = func.count().filter(Seat.status == SeatStatus.AVAILABLE)
    query = select(func.count(), available).where(Seat.event_id == event_id)
    async with uows.read() as session:
        seats, free = (await session.execute(query)).one()
    return int(free) if seats else None


def listing_query(where: EventFilter, after: EventKey | None, fetch: int) -> Select[tuple[object, ...]]:
    """The event list's one statement; public because tests EXPLAIN it and bench/pagination.py times it."""
    seats_available = (
        select(func.count())
        .where(Seat.event_id == Event.id, Seat.status == SeatStatus.AVAILABLE)
        .correlate(Event)
        .scalar_subquery()
    )
    query = select(
        Event.id,
        Event.title,
        Event.city,
        Event.venue,
        Event.starts_at,
        Event.price_cents,
        seats_available.label("seats_available"),
    )
    if where.city is not None:
        query = query.where(Event.city == where.city)
    if where.starts_after is not None:
        query = query.where(Event.starts_at >= where.starts_after)
    if where.starts_before is not None:
        query = query.where(Event.starts_at < where.starts_before)
    if after is not None:
        query = query.where(tuple_(Event.starts_at, Event.id) > tuple_(*after))
    return query.order_by(Event.starts_at, Event.id).limit(fetch)


async def list_events(
    uows: UnitOfWorkFactory, where: EventFilter, after: EventKey | None, fetch: int
) -> list[EventListing]:
    """Up to ``fetch`` events after the key ``after``, in ``(starts_at, id)`` order, with live seat counts."""
    async with uows.read() as session:
        rows = (await session.execute(listing_query(where, after, fetch))).mappings().all()
    return [EventListing(**row) for row in rows]


async def update_event(
    uows: UnitOfWorkFactory,
    organizer_id: uuid.UUID,
    event_id: uuid.UUID,
    changes: Mapping[str, object],
    versions: frozenset[int] | None,
) -> EventRecord:
    """Apply ``changes`` if the event is still at one of ``versions`` (``None``: any) and bump its version;
    ``{"status": "cancelled"}`` among them cancels it."""
    async with uows() as uow:
        found = (
            await uow.session.execute(select(Event.organizer_id, Event.status).where(Event.id == event_id))
        ).one_or_none()
        if found is None:
            raise EventNotFoundError(event_id)
        if found.organizer_id != organizer_id:
            raise NotEventOrganizerError(event_id)
        if found.status == CANCELLED:
            raise EventCancelledError(event_id)
        statement = (
            update(Event)
            .where(Event.id == event_id)
            .values(**changes, version=Event.version + 1, updated_at=func.now())
            .returning(Event)
            .execution_options(synchronize_session=False)
        )
        if versions is not None:
            statement = statement.where(Event.version.in_(sorted(versions)))
        event = (await uow.session.execute(statement)).scalar_one_or_none()
        if event is None:
            raise StaleVersionError(event_id)
        await uow.outbox.add("event.cancelled" if event.status == CANCELLED else "event.updated", _changed(event))
        await uow.commit()
    return _record(event)


async def list_seats(uows: UnitOfWorkFactory, event_id: uuid.UUID) -> list[SeatRecord]:
    """Every seat of the event by row and number; an event always has at least one, so none means no event."""
    query = (
        select(Seat.id, Seat.row, Seat.number, Seat.status)
        .where(Seat.event_id == event_id)
        .order_by(Seat.row, Seat.number)
    )
    async with uows.read() as session:
        rows = (await session.execute(query)).all()
    if not rows:
        raise EventNotFoundError(event_id)
    return [SeatRecord(id=r.id, row=r.row, number=r.number, status=SeatStatus(r.status)) for r in rows]
