"""What events, seats, holds, bookings, webhooks, users and tokens look like on the wire: one model per purpose,
inputs strict.

Why ``extra="forbid"`` on every input: a misspelt field (``"price": 10``) is a 422 naming it, never silently
dropped while the client believes it was stored. Why separate in and out models: an output can never echo a field
the client may not set (``version``, ``organizer_id``), and an input can never accept one. Times are ISO 8601 with
an offset (naive times are refused); money is integer cents. See notes/rest_design.md, "Representations".
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import Form
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from app.domain.money import MAX_CENTS
from app.security.passwords import MAX_LENGTH, MIN_LENGTH
from app.settings import MAX_SEATS_PER_HOLD


def integral(value: object) -> object:
    """``4500.0`` as ``4500``: JSON Schema's ``integer`` includes it, so a client may send it; strict integers keep
    refusing ``"4500"``, ``true`` and ``4500.5``."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


DATE_TIME_START = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def date_time_text(value: object) -> object:
    """Only RFC 3339 text is a ``date-time`` in the schema; pydantic alone would also read a number, or a string of
    digits, as Unix seconds."""
    if isinstance(value, datetime) or (isinstance(value, str) and DATE_TIME_START.match(value)):
        return value
    raise ValueError("must be an RFC 3339 date-time with an offset, such as 2027-06-01T20:00:00+00:00")


NO_NUL_PATTERN = r"^[^\x00]*$"  # PostgreSQL text cannot hold U+0000: refused as a 422, never a failed INSERT
Moment = Annotated[AwareDatetime, BeforeValidator(date_time_text)]
Text = Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL_PATTERN)]
Cents = Annotated[int, Field(ge=0, le=MAX_CENTS, strict=True), BeforeValidator(integral)]
LayoutSize = Annotated[int, Field(ge=1, le=100, strict=True), BeforeValidator(integral)]


class StrictInput(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventIn(StrictInput):
    title: Text
    city: Text
    venue: Text
    starts_at: Moment
    price_cents: Cents
    rows: LayoutSize
    seats_per_row: LayoutSize


class EventPatch(StrictInput):
    """A partial update: only the fields sent change; ``null`` is refused (none of these may be empty). The schema
    says both: no field is nullable (``None`` is only the absent field's default) and ``minProperties`` is 1.
    ``"status": "cancelled"`` cancels the event (the only value: a cancellation is final); a cancelled event takes
    no further patch (409 ``event-cancelled``) and no new hold."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    title: Text | SkipJsonSchema[None] = None
    city: Text | SkipJsonSchema[None] = None
    venue: Text | SkipJsonSchema[None] = None
    starts_at: Moment | SkipJsonSchema[None] = None
    price_cents: Cents | SkipJsonSchema[None] = None
    status: Literal["cancelled"] | SkipJsonSchema[None] = Field(
        default=None, description="Send `cancelled` to cancel the event; a cancellation is final."
    )

    @model_validator(mode="after")
    def some_field_and_no_nulls(self) -> EventPatch:
        if not self.model_fields_set:
            raise ValueError("send at least one of title, city, venue, starts_at, price_cents, status")
        nulls = sorted(name for name in self.model_fields_set if getattr(self, name) is None)
        if nulls:
            raise ValueError(f"these fields cannot be null: {', '.join(nulls)}")
        return self

    def changes(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class EventOut(BaseModel):
    """One event's own fields: what its ``ETag`` versions (live seat counts are not part of it)."""

    id: uuid.UUID
    title: str
    city: str
    venue: str
    starts_at: datetime
    price_cents: int
    rows: int
    seats_per_row: int
    status: Literal["scheduled", "cancelled"]


class EventSummary(BaseModel):
    """A row of the event list, with how many seats are available right now."""

    id: uuid.UUID
    title: str
    city: str
    venue: str
    starts_at: datetime
    price_cents: int
    seats_available: int


class EventHit(BaseModel):
    """A search result: the event's searchable fields, in relevance order (no live seat count: Elasticsearch does not
    hold one, and a search page must not cost a count per row)."""

    id: uuid.UUID
    title: str
    city: str
    venue: str
    starts_at: datetime
    price_cents: int


class AvailabilityOut(BaseModel):
    """How many seats of an event are available, as of at most ``availability_cache_ttl_s`` (+10 %) ago."""

    event_id: uuid.UUID
    seats_available: int


class SeatOut(BaseModel):
    id: uuid.UUID
    row: int
    number: int
    status: Literal["available", "held", "sold"]


class SeatList(BaseModel):
    items: list[SeatOut]


class HoldIn(StrictInput):
    # Count and distinctness are declared here and checked by ``seat_request`` (app/domain/holds.py), whose 422
    # names the rule broken
    seat_ids: list[uuid.UUID] = Field(
        min_length=1,
        json_schema_extra={"maxItems": MAX_SEATS_PER_HOLD, "uniqueItems": True},
        description=f"1..{MAX_SEATS_PER_HOLD} distinct seats of this event",
    )


class HoldOut(BaseModel):
    id: uuid.UUID
    event_id: uuid.UUID
    seat_ids: list[uuid.UUID]
    expires_at: datetime
    status: Literal["active", "paying", "booked", "expired", "released"]


class BookingIn(StrictInput):
    hold_id: uuid.UUID
    card_token: str = Field(
        default="tok_demo", pattern=r"^[A-Za-z0-9_]{1,64}$", description="the provider's card token"
    )


class BookingOut(BaseModel):
    id: uuid.UUID
    event_id: uuid.UUID
    seat_ids: list[uuid.UUID]
    status: Literal["confirmed"]
    amount_cents: int
    created_at: datetime


class WebhookIn(StrictInput):
    url: str = Field(
        min_length=1, max_length=2048, description="http(s) URL on a public address; private targets are refused"
    )


class WebhookOut(BaseModel):
    event_id: uuid.UUID
    url: str
    updated_at: datetime


class WebhookSet(WebhookOut):
    secret: str = Field(
        description="The signing secret (whsec_ + base64), shown in this answer only; setting the URL again rotates"
        " it. Verify each delivery's webhook-signature: v1,base64(HMAC-SHA256(secret, webhook-id + '.' +"
        " webhook-timestamp + '.' + body)), and refuse a webhook-timestamp more than 300 s from your clock."
    )


class WebhookDeliveryAttemptOut(BaseModel):
    """One attempt to deliver one message to the event's webhook: ``parked`` is a last attempt that failed."""

    id: int
    message_id: uuid.UUID = Field(description="also the webhook-id header: the same for every attempt of a message")
    type: str
    attempt: int = Field(ge=1)
    outcome: Literal["delivered", "failed", "parked"]
    status_code: int | None = Field(description="the receiver's HTTP status; null when none came back")
    error: str | None
    created_at: datetime


class NotificationOut(BaseModel):
    id: uuid.UUID
    kind: Literal["booking-confirmed", "hold-expired", "payment-settled"]
    text: str
    event_id: uuid.UUID
    booking_id: uuid.UUID | None
    created_at: datetime


class WebhookDelivery(BaseModel):
    """The receiver's final HTTP status for a ping, after at most the allowed redirects."""

    status: int
    redirects: int


# -- auth ------------------------------------------------------------------------------------------------------
EMAIL_PATTERN = r"^[^@\s\x00]{1,64}@[^@\s\x00]{1,255}\.[^@\s\x00]{2,63}$"  # no U+0000: PostgreSQL text refuses it


class Registration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(pattern=EMAIL_PATTERN, max_length=254)
    # The length is declared here and enforced by the policy, so a short password is a ``weak-password`` problem
    password: str = Field(
        json_schema_extra={"minLength": MIN_LENGTH, "maxLength": MAX_LENGTH},
        description=f"{MIN_LENGTH}..{MAX_LENGTH} characters; also refused (422 weak-password) if it contains the "
        "email's name, repeats fewer than 4 distinct characters, or is built on a common breached password or a "
        "keyboard sequence",
    )


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    role: Literal["user", "organizer"]


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int


class RefreshTokenIn(BaseModel):
    """Any string: one that is not a live refresh token (empty, an access token, too long) is the same 401 as a
    spent one, so no length rule may tell them apart with a 422."""

    model_config = ConfigDict(extra="forbid")

    refresh_token: str


class PasswordGrantForm:
    """The OAuth2 password grant's form (RFC 6749, 4.3.2), as FastAPI's ``OAuth2PasswordRequestForm`` but with
    ``minLength: 1`` declared: FastAPI reads an empty form field as a missing one (a 422), so the schema says so.
    ``grant_type`` may be left out, but a form cannot carry ``null``, so the schema does not offer it."""

    def __init__(
        self,
        *,
        username: Annotated[str, Form(min_length=1, pattern=NO_NUL_PATTERN)],
        password: Annotated[str, Form(min_length=1, json_schema_extra={"format": "password"})],
        grant_type: Annotated[Literal["password"] | SkipJsonSchema[None], Form()] = None,
    ) -> None:
        self.username = username
        self.password = password
        self.grant_type = grant_type
