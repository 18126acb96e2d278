"""``POST /api/v1/events/{id}/holds``, ``GET`` and ``DELETE /api/v1/holds/{id}``: claim seats for a while.

Why 409 ``seat-not-available`` with nothing held: a hold of several seats is all or nothing, so a client never
has to undo half a hold; the problem lists the seats it could not get. Why someone else's hold is 404, not 403:
a 403 would confirm the id exists. ``DELETE`` is idempotent (a hold already released or expired answers 204) but
refuses with 409 once a payment is in flight or done. The decision itself is one statement in
app/services/holds.py. Too many seats in one hold is a 422 (the request can never succeed); too many active holds
is a 409 ``hold-limit-reached`` (it succeeds once the caller books or releases one): notes/security.md, "Resource
caps per user". See notes/rest_design.md and notes/postgres.md, "Contention".
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Response

from app.api.deps import CurrentUser, ReplicaRouterDep, SettingsDep, UowsDep
from app.api.problem_table import ProblemTable
from app.api.problems import Problem
from app.api.rate_limits import HOLDS_LIMIT
from app.api.v1.events import EVENT_PROBLEMS
from app.api.v1.schemas import HoldIn, HoldOut
from app.domain.holds import HoldLimitError, SeatRequestError, seat_request
from app.services.events import EventCancelledError
from app.services.holds import (
    HoldNotFoundError,
    HoldNotReleasableError,
    HoldRecord,
    SeatsNotAvailableError,
    get_hold,
    place_hold,
    release_hold,
)


def invalid_seat_request(error: SeatRequestError) -> Problem:
    return Problem(
        422,
        detail=str(error),
        extensions={"errors": [{"loc": ["body", "seat_ids"], "msg": str(error), "type": "seat_request"}]},
    )


def hold_limit_reached(error: HoldLimitError) -> Problem:
    return Problem(
        409,
        kind="hold-limit-reached",
        detail=f"You already have {error.active} active hold(s), the most one account may have; "
        "book or release one first.",
        extensions={"limit": error.limit},
    )


def seats_not_available(error: SeatsNotAvailableError) -> Problem:
    return Problem(
        409,
        kind="seat-not-available",
        detail="Some seats are not available for this event; nothing was held.",
        extensions={"seat_ids": [str(seat) for seat in error.unavailable]},
    )


def event_cancelled(error: EventCancelledError) -> Problem:
    return Problem(409, kind="event-cancelled", detail=f"Event {error.event_id} is cancelled; it takes no new holds.")


def hold_not_found(error: HoldNotFoundError) -> Problem:
    return Problem(404, kind="not-found", detail=f"You have no hold with id {error.hold_id}.")


def hold_not_releasable(error: HoldNotReleasableError) -> Problem:
    return Problem(409, kind="hold-not-releasable", detail=f"The hold is {error.status}; it can no longer be released.")


HOLD_PROBLEMS = EVENT_PROBLEMS | ProblemTable(
    {
        SeatRequestError: invalid_seat_request,
        HoldLimitError: hold_limit_reached,
        SeatsNotAvailableError: seats_not_available,
        HoldNotFoundError: hold_not_found,
        HoldNotReleasableError: hold_not_releasable,
        EventCancelledError: event_cancelled,
    }
)


def _represent(record: HoldRecord) -> HoldOut:
    return HoldOut(
        id=record.id,
        event_id=record.event_id,
        seat_ids=list(record.seat_ids),
        expires_at=record.expires_at,
        status=record.status.value,
    )


def build_holds_router() -> APIRouter:
    api = APIRouter(tags=["holds"])

    @api.post("/events/{event_id}/holds", status_code=201, response_model=HoldOut, dependencies=[Depends(HOLDS_LIMIT)])
    async def place(
        event_id: uuid.UUID,
        body: HoldIn,
        user: CurrentUser,
        uows: UowsDep,
        replica_router: ReplicaRouterDep,
        settings: SettingsDep,
        response: Response,
    ) -> HoldOut:
        with HOLD_PROBLEMS.translating():
            record = await place_hold(
                uows,
                user_id=user.user_id,
                event_id=event_id,
                seat_ids=seat_request(body.seat_ids, max_seats=settings.max_seats_per_hold),
                ttl_s=settings.hold_ttl_s,
                now=datetime.now(UTC),
                max_active_holds=settings.max_active_holds_per_user,
            )
        await replica_router.remember_write(user.user_id)
        response.headers["Location"] = f"/api/v1/holds/{record.id}"
        return _represent(record)

    @api.get("/holds/{hold_id}", response_model=HoldOut)
    async def read(hold_id: uuid.UUID, user: CurrentUser, uows: UowsDep) -> HoldOut:
        with HOLD_PROBLEMS.translating():
            return _represent(await get_hold(uows, hold_id=hold_id, user_id=user.user_id))

    @api.delete("/holds/{hold_id}", status_code=204)
    async def release(hold_id: uuid.UUID, user: CurrentUser, uows: UowsDep) -> Response:
        with HOLD_PROBLEMS.translating():
            await release_hold(uows, hold_id=hold_id, user_id=user.user_id)
        return Response(status_code=204)

    return api
