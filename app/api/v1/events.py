"""``/api/v1/events``: list (keyset pages), create (organizers), read (ETag, 304), patch (If-Match), seats, and
availability.

Why each status: 201 with ``Location`` and ``ETag`` so the client can go straight to the new resource and later
edit it conditionally; 304 when ``If-None-Match`` names the current tag; 428 for a PATCH without ``If-Match``
and 412 when the event moved on; 403 for callers who may not write; 404 for ids that name nothing. The routes
translate; the use cases live in app/services/events.py. The event and its availability are read through Redis
(cache-aside, app/services/event_cache.py): create and patch write the new version through after their commit, and
a client holding a newer version than the cache goes to the primary; anonymous list pages are cached for as long as
availability, and every create and patch retires them. Each worker also holds events and pages in its memory
(the first level) until another worker's write is announced: an organizer, the only caller who can be owed an
event's write, reads past it (the write-through reached Redis before the write answered). An anonymous read of an
event the worker holds is answered before routing, by the same rule (app/api/v1/event_reads.py). See
notes/rest_design.md and notes/redis.md, "Cache-aside" and "Two levels: a worker's memory in front of Redis".
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import AwareDatetime, TypeAdapter

from app.api.deps import MaybeUser, Organizer, ReadsDep, ReplicaRouterDep, StateDep, UowsDep
from app.api.etag import (
    NOT_MODIFIED_RESPONSE,
    IfMatch,
    IfNoneMatch,
    entity_tag,
    matching_versions,
    precondition_failed,
)
from app.api.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page, cut_page, decode_cursor
from app.api.problem_table import ProblemTable
from app.api.problems import Problem
from app.api.v1.event_reads import EVENT_PATH, event_response, newest_known
from app.api.v1.schemas import (
    NO_NUL_PATTERN,
    AvailabilityOut,
    EventIn,
    EventOut,
    EventPatch,
    EventSummary,
    Moment,
    SeatList,
    SeatOut,
)
from app.db.replica_routing import Reason
from app.services.events import (
    EventCancelledError,
    EventFilter,
    EventKey,
    EventListing,
    EventNotFoundError,
    EventRecord,
    NewEvent,
    NotEventOrganizerError,
    StaleVersionError,
    count_available_seats,
    create_event,
    find_event,
    list_events,
    list_seats,
    update_event,
)

EVENT_KEY: TypeAdapter[EventKey] = TypeAdapter(tuple[AwareDatetime, uuid.UUID])


def event_not_found(error: EventNotFoundError) -> Problem:
    return Problem(404, kind="not-found", detail=f"No event has id {error.event_id}.")


def not_event_organizer(_error: NotEventOrganizerError) -> Problem:
    return Problem(403, kind="forbidden", detail="Only the event's organizer can change it.")


def stale_version(_error: StaleVersionError) -> Problem:
    return precondition_failed()


def event_cancelled(error: EventCancelledError) -> Problem:
    return Problem(409, kind="event-cancelled", detail=f"Event {error.event_id} is cancelled; it can no longer change.")


EVENT_PROBLEMS = ProblemTable({EventNotFoundError: event_not_found})
EVENT_WRITE_PROBLEMS = EVENT_PROBLEMS | ProblemTable(
    {
        NotEventOrganizerError: not_event_organizer,
        StaleVersionError: stale_version,
        EventCancelledError: event_cancelled,
    }
)


def _represent(record: EventRecord, response: Response) -> EventOut:
    response.headers["ETag"] = entity_tag(record.id, record.version)
    return EventOut.model_validate(record, from_attributes=True)


def build_events_router() -> APIRouter:
    api = APIRouter(tags=["events"])

    @api.get("/events", response_model=Page[EventSummary])
    async def list_(
        reads: ReadsDep,
        state: StateDep,
        user: MaybeUser,
        city: Annotated[str | None, Query(min_length=1, max_length=200, pattern=NO_NUL_PATTERN)] = None,
        starts_after: Moment | None = None,
        starts_before: Moment | None = None,
        limit: LimitQuery = DEFAULT_LIMIT,
        cursor: CursorQuery = None,
    ) -> Page[EventSummary]:
        after = decode_cursor(cursor, EVENT_KEY) if cursor is not None else None
        where = EventFilter(city=city, starts_after=starts_after, starts_before=starts_before)

        async def load() -> list[EventListing]:
            return await reads.run(lambda uows: list_events(uows, where, after, fetch=limit + 1))

        # Only anonymous pages are shared: a signed-in reader may be owed its own write (read-your-writes)
        rows = await state["event_caches"].lists.get(where, after, limit + 1, load) if user is None else await load()
        items, next_cursor = cut_page(rows, limit, lambda row: row.key, EVENT_KEY)
        summaries = [EventSummary.model_validate(item, from_attributes=True) for item in items]
        return Page[EventSummary](items=summaries, next_cursor=next_cursor)

    @api.post("/events", status_code=201, response_model=EventOut)
    async def create(
        body: EventIn,
        organizer: Organizer,
        uows: UowsDep,
        replica_router: ReplicaRouterDep,
        state: StateDep,
        response: Response,
    ) -> EventOut:
        record = await create_event(uows, organizer.user_id, NewEvent(**body.model_dump()))
        await replica_router.remember_write(organizer.user_id)
        await state["event_caches"].events.put(str(record.id), record)  # replaces a cached "missing"
        await state["event_caches"].lists.invalidate()
        response.headers["Location"] = f"/api/v1/events/{record.id}"
        return _represent(record, response)

    @api.get(EVENT_PATH, response_model=EventOut, responses=NOT_MODIFIED_RESPONSE)
    async def read(
        event_id: uuid.UUID,
        reads: ReadsDep,
        state: StateDep,
        user: MaybeUser,
        if_none_match: IfNoneMatch = None,
    ) -> EventOut | Response:
        cache = state["event_caches"].events
        # Only organizers write events: only they may be owed a write this worker has not heard of yet
        local = user is None or user.role != "organizer"
        with EVENT_PROBLEMS.translating():
            record = await cache.get(
                str(event_id), lambda: reads.run(lambda uows: find_event(uows, event_id)), local=local
            )
            # Neither the cache nor a replica behind this client's copy may hand it an older version (nor a 200 for
            # a 304): the primary answers, and its version goes into the cache.
            if newest_known(if_none_match, event_id) > (record.version if record is not None else 0):
                record = await reads.run_on_primary(Reason.CLIENT_AHEAD, lambda uows: find_event(uows, event_id))
                await cache.put(str(event_id), record)
            if record is None:
                raise EventNotFoundError(event_id)
        return event_response(record, if_none_match)

    @api.patch("/events/{event_id}", response_model=EventOut)
    async def patch(
        event_id: uuid.UUID,
        body: EventPatch,
        organizer: Organizer,
        uows: UowsDep,
        replica_router: ReplicaRouterDep,
        state: StateDep,
        response: Response,
        if_match: IfMatch = None,
    ) -> EventOut:
        versions = matching_versions(if_match, event_id)
        with EVENT_WRITE_PROBLEMS.translating():
            record = await update_event(uows, organizer.user_id, event_id, body.changes(), versions)
        await replica_router.remember_write(organizer.user_id)
        await state["event_caches"].events.put(str(event_id), record)  # after the commit; an older fill cannot undo it
        await state["event_caches"].lists.invalidate()
        return _represent(record, response)

    @api.get("/events/{event_id}/seats", response_model=SeatList)
    async def seats(event_id: uuid.UUID, reads: ReadsDep) -> SeatList:
        with EVENT_PROBLEMS.translating():
            records = await reads.run(lambda uows: list_seats(uows, event_id))
        return SeatList(items=[SeatOut.model_validate(seat, from_attributes=True) for seat in records])

    @api.get("/events/{event_id}/availability", response_model=AvailabilityOut)
    async def availability(event_id: uuid.UUID, reads: ReadsDep, state: StateDep) -> AvailabilityOut:
        """Seats available now, as of at most ``availability_cache_ttl_s`` (+10 % jitter) ago: its own resource, so
        a sale changes neither the event's ``ETag`` nor an organizer's ``If-Match``."""
        cache = state["event_caches"].availability
        with EVENT_PROBLEMS.translating():
            count = await cache.get(
                str(event_id), lambda: reads.run(lambda uows: count_available_seats(uows, event_id))
            )
            if count is None:
                raise EventNotFoundError(event_id)
        return AvailabilityOut(event_id=event_id, seats_available=count)

    return api
