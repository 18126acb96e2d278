"""``POST /api/v1/bookings`` (pay for a hold, with ``Idempotency-Key``), ``GET /api/v1/bookings/{id}`` and
``GET /api/v1/me/bookings``.

Why these status codes: a declined card is the client's to fix (402, the hold kept); a provider that is down or a
breaker that is open is ours and temporary (503 with ``Retry-After``, the hold kept, no booking, no charge
recorded); an expired or already-booked hold is a conflict with the resource's state (409). Someone else's
booking is 404. See notes/rest_design.md and notes/fault_tolerance.md.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter

from app.api.deps import CurrentUser, ReadsDep, RouterDep, SettingsDep, StateDep, UowDep
from app.api.etag import IfNoneMatch, entity_tag, is_fresh, not_modified
from app.api.idempotency import check_key, run_once
from app.api.pagination import CursorQuery, LimitQuery, Page, cut_page, decode_cursor
from app.api.problems import Problem
from app.api.v1.schemas import BookingIn, BookingOut
from app.payments.outcomes import PaymentRequestRejected, PaymentUnavailable
from app.services.bookings import (
    BookingRecord,
    HoldNotBookableError,
    PaymentDeclinedError,
    book_hold,
    get_booking,
    list_bookings,
)

BOOKING_VERSION = 1  # a confirmed booking never changes; a future cancel would bump it
BookingKey = tuple[datetime, uuid.UUID]
BOOKING_KEY: TypeAdapter[BookingKey] = TypeAdapter(BookingKey)
NOT_CHARGED = "The payment provider is unavailable; nothing was charged and the seats stay held. Retry later."
UNKNOWN_OUTCOME = (
    "The payment provider did not answer in time or usably, so the charge may or may not have happened. Retry:"
    " the provider settles it with the same key, so you are charged at most once, and the seats stay yours."
)
NOT_BOOKABLE = {
    "not-found": (404, "hold-not-found", "You have no hold with this id."),
    "expired": (409, "hold-expired", "The hold has expired or was released; hold the seats again."),
    "booked": (409, "hold-already-booked", "This hold is already booked."),
    "payment-unsettled": (
        409,
        "payment-unsettled",
        "A payment for this hold with another card has an unknown outcome. Retry with that card, or wait until it"
        " is settled (about a minute) before paying with another one.",
    ),
}


def represent(record: BookingRecord) -> BookingOut:
    return BookingOut(
        id=record.id,
        event_id=record.event_id,
        seat_ids=list(record.seat_ids),
        status=record.status,
        amount_cents=record.amount_cents,
        created_at=record.created_at,
    )


def build_bookings_router() -> APIRouter:
    router = APIRouter(tags=["bookings"])

    @router.post("/bookings", status_code=201, response_model=BookingOut, responses={402: {}, 409: {}, 503: {}})
    async def book(
        body: BookingIn,
        request: Request,
        user: CurrentUser,
        uow: UowDep,
        router: RouterDep,
        state: StateDep,
        settings: SettingsDep,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> Response:
        async def execute() -> Response:
            try:
                record = await book_hold(
                    uow,
                    state["payments"],
                    user_id=user.user_id,
                    hold_id=body.hold_id,
                    card_token=body.card_token,
                    now=datetime.now(UTC),
                )
            except HoldNotBookableError as error:
                status, kind, detail = NOT_BOOKABLE[error.reason]
                raise Problem(status, kind=kind, detail=detail) from None
            except PaymentDeclinedError as error:
                raise Problem(
                    402,
                    kind="payment-declined",
                    detail="The card was declined; the seats stay held until the hold expires.",
                    extensions={"decline_code": error.decline_code},
                ) from None
            except PaymentUnavailable as error:
                raise Problem(
                    503,
                    kind="payment-provider-unavailable",
                    detail=UNKNOWN_OUTCOME if error.outcome_unknown else NOT_CHARGED,
                    headers={"Retry-After": str(max(1, error.retry_after_s))},
                ) from None
            except PaymentRequestRejected:
                raise Problem(
                    502, kind="payment-provider-error", detail="The payment provider refused the request."
                ) from None
            await router.remember_write(user.user_id)
            booking = represent(record)
            return JSONResponse(
                booking.model_dump(mode="json"), status_code=201, headers={"Location": f"/api/v1/bookings/{record.id}"}
            )

        if idempotency_key is None:
            return await execute()
        wait_s = settings.payments_deadline_s + 2.0
        return await run_once(request, uow, user.user_id, check_key(idempotency_key), execute, wait_s=wait_s)

    @router.get("/bookings/{booking_id}", response_model=BookingOut, responses={304: {}})
    async def read(
        booking_id: uuid.UUID, user: CurrentUser, reads: ReadsDep, response: Response, if_none_match: IfNoneMatch = None
    ) -> BookingOut | Response:
        record = await reads.run(lambda uow: get_booking(uow, user_id=user.user_id, booking_id=booking_id))
        if record is None:
            raise Problem(404, kind="not-found", detail=f"You have no booking with id {booking_id}.")
        etag = entity_tag(record.id, BOOKING_VERSION)
        if is_fresh(if_none_match, etag):
            return not_modified(etag)
        response.headers["ETag"] = etag
        return represent(record)

    @router.get("/me/bookings", response_model=Page[BookingOut])
    async def mine(
        user: CurrentUser, reads: ReadsDep, limit: LimitQuery = 20, cursor: CursorQuery = None
    ) -> Page[BookingOut]:
        before = decode_cursor(cursor, BOOKING_KEY) if cursor else None
        rows = await reads.run(lambda uow: list_bookings(uow, user_id=user.user_id, before=before, fetch=limit + 1))
        items, next_cursor = cut_page(rows, limit, lambda r: (r.created_at, r.id), BOOKING_KEY)
        return Page[BookingOut](items=[represent(r) for r in items], next_cursor=next_cursor)

    return router
