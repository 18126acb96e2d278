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

from fastapi import APIRouter, Response

from app.api.deps import CurrentUser, RouterDep, SettingsDep, UowDep
from app.api.problems import Problem
from app.api.v1.events import event_not_found
from app.api.v1.schemas import HoldIn, HoldOut
from app.domain.holds import HoldLimitError, SeatRequestError, seat_request
from app.services.events import EventNotFoundError
from app.services.holds import (
    HoldNotFoundError,
    HoldNotReleasableError,
    HoldRecord,
    SeatsNotAvailableError,
    get_hold,
    place_hold,
    release_hold,
)


def hold_not_found(hold_id: uuid.UUID) -> Problem:
    return Problem(404, kind="not-found", detail=f"You have no hold with id {hold_id}.")


def _represent(record: HoldRecord) -> HoldOut:
    return HoldOut(
        id=record.id,
        event_id=record.event_id,
        seat_ids=list(record.seat_ids),
        expires_at=record.expires_at,
        status=record.status.value,
    )


def build_holds_router() -> APIRouter:
    router = APIRouter(tags=["holds"])

    @router.post("/events/{event_id}/holds", status_code=201, response_model=HoldOut)
    async def place(
        event_id: uuid.UUID,
        body: HoldIn,
        user: CurrentUser,
        uow: UowDep,
        router: RouterDep,
        settings: SettingsDep,
        response: Response,
    ) -> HoldOut:
        try:
            seat_ids = seat_request(body.seat_ids, max_seats=settings.max_seats_per_hold)
        except SeatRequestError as error:
            raise Problem(
                422,
                detail=str(error),
                extensions={"errors": [{"loc": ["body", "seat_ids"], "msg": str(error), "type": "seat_request"}]},
            ) from None
        try:
            record = await place_hold(
                uow,
                user_id=user.user_id,
                event_id=event_id,
                seat_ids=seat_ids,
                ttl_s=settings.hold_ttl_s,
                now=datetime.now(UTC),
                max_active_holds=settings.max_active_holds_per_user,
            )
        except EventNotFoundError:
            raise event_not_found(event_id) from None
        except HoldLimitError as error:
            raise Problem(
                409,
                kind="hold-limit-reached",
                detail=f"You already have {error.active} active hold(s), the most one account may have; "
                "book or release one first.",
                extensions={"limit": error.limit},
            ) from None
        except SeatsNotAvailableError as error:
            raise Problem(
                409,
                kind="seat-not-available",
                detail="Some seats are not available for this event; nothing was held.",
                extensions={"seat_ids": [str(seat) for seat in error.unavailable]},
            ) from None
        await router.remember_write(user.user_id)
        response.headers["Location"] = f"/api/v1/holds/{record.id}"
        return _represent(record)

    @router.get("/holds/{hold_id}", response_model=HoldOut)
    async def read(hold_id: uuid.UUID, user: CurrentUser, uow: UowDep) -> HoldOut:
        try:
            return _represent(await get_hold(uow, hold_id=hold_id, user_id=user.user_id))
        except HoldNotFoundError:
            raise hold_not_found(hold_id) from None

    @router.delete("/holds/{hold_id}", status_code=204)
    async def release(hold_id: uuid.UUID, user: CurrentUser, uow: UowDep) -> Response:
        try:
            await release_hold(uow, hold_id=hold_id, user_id=user.user_id)
        except HoldNotFoundError:
            raise hold_not_found(hold_id) from None
        except HoldNotReleasableError as error:
            raise Problem(
                409, kind="hold-not-releasable", detail=f"The hold is {error.status}; it can no longer be released."
            ) from None
        return Response(status_code=204)

    return router
