"""``POST /api/v1/bookings`` (pay for a hold, with ``Idempotency-Key``), ``GET /api/v1/bookings/{id}`` and
``GET /api/v1/me/bookings``.

Why these status codes: a declined card is the client's to fix (402, the hold kept); a provider that is down or a
breaker that is open is ours and temporary (503 with ``Retry-After``, the hold kept, no booking, no charge
recorded); an expired or already-booked hold is a conflict with the resource's state (409). Someone else's
booking is 404. The route itself only calls the use case, maps its errors (``BOOKING_PROBLEMS``, one table) and
responds; ``@idempotent`` wraps the whole handler. See notes/rest_design.md and notes/fault_tolerance.md.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter

from app.api.deps import CurrentUser, PaymentsDep, ReadsDep, ReplicaRouterDep, UowsDep
from app.api.etag import NOT_MODIFIED_RESPONSE, IfNoneMatch, entity_tag, is_fresh, not_modified
from app.api.idempotency import idempotent
from app.api.pagination import CursorQuery, LimitQuery, Page, cut_page, decode_cursor
from app.api.problem_table import ProblemTable
from app.api.problems import Problem
from app.api.rate_limits import BOOKINGS_LIMIT
from app.api.v1.schemas import BookingIn, BookingOut
from app.services.bookings import book_hold, get_booking, list_bookings
from app.services.payment_attempts import (
    BookingRecord,
    HoldNotBookableError,
    NotBookable,
    PaymentDeclinedError,
    PaymentProviderRefusedError,
    PaymentProviderUnavailableError,
)

BOOKING_VERSION = 1  # a confirmed booking never changes; a future cancel would bump it
BookingKey = tuple[datetime, uuid.UUID]
BOOKING_KEY: TypeAdapter[BookingKey] = TypeAdapter(BookingKey)
NOT_CHARGED = "The payment provider is unavailable; nothing was charged and the seats stay held. Retry later."
UNKNOWN_OUTCOME = (
    "The payment provider did not answer in time or usably, so the charge may or may not have happened. Retry:"
    " the provider settles it with the same key, so you are charged at most once, and the seats stay yours."
)
NOT_BOOKABLE: dict[NotBookable, tuple[int, str, str]] = {
    NotBookable.NOT_FOUND: (404, "hold-not-found", "You have no hold with this id."),
    NotBookable.EXPIRED: (409, "hold-expired", "The hold has expired or was released; hold the seats again."),
    NotBookable.BOOKED: (409, "hold-already-booked", "This hold is already booked."),
    NotBookable.EVENT_CANCELLED: (409, "event-cancelled", "The event was cancelled; it takes no bookings."),
    NotBookable.PAYMENT_UNSETTLED: (
        409,
        "payment-unsettled",
        "A payment for this hold with another card has an unknown outcome. Retry with that card, or wait until it"
        " is settled (about a minute) before paying with another one.",
    ),
}


def not_bookable(error: HoldNotBookableError) -> Problem:
    status, kind, detail = NOT_BOOKABLE[error.reason]
    return Problem(status, kind=kind, detail=detail)


def declined(error: PaymentDeclinedError) -> Problem:
    return Problem(
        402,
        kind="payment-declined",
        detail="The card was declined; the seats stay held until the hold expires.",
        extensions={"decline_code": error.decline_code},
    )


def provider_unavailable(error: PaymentProviderUnavailableError) -> Problem:
    return Problem(
        503,
        kind="payment-provider-unavailable",
        detail=UNKNOWN_OUTCOME if error.outcome_unknown else NOT_CHARGED,
        headers={"Retry-After": str(max(1, error.retry_after_s))},
    )


def provider_refused(_error: PaymentProviderRefusedError) -> Problem:
    return Problem(502, kind="payment-provider-error", detail="The payment provider refused the request.")


BOOKING_PROBLEMS = ProblemTable(
    {
        HoldNotBookableError: not_bookable,
        PaymentDeclinedError: declined,
        PaymentProviderUnavailableError: provider_unavailable,
        PaymentProviderRefusedError: provider_refused,
    }
)


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
    api = APIRouter(tags=["bookings"])

    @api.post(
        "/bookings",
        status_code=201,
        response_model=BookingOut,
        responses={402: {}, 409: {}, 503: {}},
        dependencies=[Depends(BOOKINGS_LIMIT)],
    )
    @idempotent(wait_s=lambda settings: settings.payments_deadline_s + 2.0)
    async def book(
        body: BookingIn, user: CurrentUser, uows: UowsDep, payments: PaymentsDep, replica_router: ReplicaRouterDep
    ) -> Response:
        with BOOKING_PROBLEMS.translating():
            record = await book_hold(
                uows,
                payments,
                user_id=user.user_id,
                hold_id=body.hold_id,
                card_token=body.card_token,
                now=datetime.now(UTC),
            )
        await replica_router.remember_write(user.user_id)
        location = {"Location": f"/api/v1/bookings/{record.id}"}
        return JSONResponse(represent(record).model_dump(mode="json"), status_code=201, headers=location)

    @api.get("/bookings/{booking_id}", response_model=BookingOut, responses=NOT_MODIFIED_RESPONSE)
    async def read(
        booking_id: uuid.UUID, user: CurrentUser, reads: ReadsDep, response: Response, if_none_match: IfNoneMatch = None
    ) -> BookingOut | Response:
        record = await reads.run(lambda uows: get_booking(uows, user_id=user.user_id, booking_id=booking_id))
        if record is None:
            raise Problem(404, kind="not-found", detail=f"You have no booking with id {booking_id}.")
        etag = entity_tag(record.id, BOOKING_VERSION)
        if is_fresh(if_none_match, etag):
            return not_modified(etag)
        response.headers["ETag"] = etag
        return represent(record)

    @api.get("/me/bookings", response_model=Page[BookingOut])
    async def mine(
        user: CurrentUser, reads: ReadsDep, limit: LimitQuery = 20, cursor: CursorQuery = None
    ) -> Page[BookingOut]:
        before = decode_cursor(cursor, BOOKING_KEY) if cursor else None
        rows = await reads.run(lambda uows: list_bookings(uows, user_id=user.user_id, before=before, fetch=limit + 1))
        items, next_cursor = cut_page(rows, limit, lambda r: (r.created_at, r.id), BOOKING_KEY)
        return Page[BookingOut](items=[represent(r) for r in items], next_cursor=next_cursor)

    return api
