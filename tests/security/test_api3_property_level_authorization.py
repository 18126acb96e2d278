"""API3:2023 Broken object property-level authorization: no writing fields you may not set, no reading fields you
may not see.

Mass assignment: each write carries one extra field an attacker would love to set (``role``, a booking's
``status`` or ``amount_cents``, an event's ``organizer_id`` or ``version``, a hold's ``user_id``) and is a 422
naming it, with nothing written. Excessive exposure: every object the API returns has exactly the properties its
OpenAPI schema declares (read from the live schema, so a new internal column that leaks fails here) and none of
the internal names. Through Nginx. See notes/security.md, "Property-level authorization".
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from stack.native.stack import NativeStack
from tests.api_users import ApiUser, call, create_event, event_body, new_user
from tests.bookings import book, held

INTERNAL = {"password_hash", "organizer_id", "version", "user_id", "payment_id", "hold_id", "token_hash", "role_id"}


@pytest.fixture(scope="module")
def organizer(stack: NativeStack) -> ApiUser:
    return new_user(stack, organizer=True, label="api3-organizer")


@pytest.fixture(scope="module")
def schemas(stack: NativeStack) -> dict[str, Any]:
    status, _, document = call(stack, "GET", "/openapi.json")
    assert status == 200
    return dict(document["components"]["schemas"])


def test_extra_fields_on_every_write_are_422_and_write_nothing(stack: NativeStack, organizer: ApiUser) -> None:
    user = new_user(stack, label="api3-user")
    event = create_event(stack, organizer)
    seat = call(stack, "GET", f"/api/v1/events/{event['id']}/seats")[2]["items"][0]["id"]
    email = f"api3-{uuid.uuid4().hex[:8]}@example.com"
    attempts = [
        (
            None,
            "POST",
            "/api/v1/auth/register",
            {"email": email, "password": "a long enough phrase", "role": "organizer"},
        ),
        (organizer, "POST", "/api/v1/events", {**event_body(), "organizer_id": user.id}),
        (organizer, "PATCH", f"/api/v1/events/{event['id']}", {"title": "x", "version": 99}),
        (user, "POST", f"/api/v1/events/{event['id']}/holds", {"seat_ids": [seat], "user_id": organizer.id}),
        (user, "POST", "/api/v1/bookings", {"hold_id": str(uuid.uuid4()), "status": "confirmed", "amount_cents": 0}),
        (organizer, "PUT", f"/api/v1/events/{event['id']}/webhook", {"url": "https://93.184.215.14/", "event_id": "x"}),
    ]
    for caller, method, path, body in attempts:
        headers = {"If-Match": "*"} if method == "PATCH" else None
        status, _, problem = call(stack, method, path, user=caller, body=body, headers=headers)
        assert status == 422, (path, problem)
        assert any(error["type"] == "extra_forbidden" for error in problem["errors"]), (path, problem)
    assert stack.primary.sql(f"SELECT count(*) FROM app_user WHERE email = '{email}'", database="refstack") == "0"
    assert stack.primary.sql(f"SELECT count(*) FROM hold WHERE event_id = '{event['id']}'", database="refstack") == "0"
    assert call(stack, "GET", f"/api/v1/events/{event['id']}/webhook", user=organizer)[0] == 404


def declared(schemas: dict[str, Any], name: str) -> set[str]:
    return set(schemas[name]["properties"])


@pytest.mark.usefixtures("closed_breakers")
def test_every_representation_has_exactly_its_declared_properties(
    stack: NativeStack, organizer: ApiUser, schemas: dict[str, Any], simulator: str
) -> None:
    buyer = new_user(stack, label="api3-buyer")
    hold = held(stack, organizer, buyer, seats=1)
    status, headers, _ = book(stack, buyer, hold["id"])
    assert status == 201
    event_id = hold["event_id"]
    call(stack, "PUT", f"/api/v1/events/{event_id}/webhook", user=organizer, body={"url": "https://93.184.215.14/"})
    seen = {
        "UserOut": call(stack, "GET", "/api/v1/me", user=buyer)[2],
        "EventOut": call(stack, "GET", f"/api/v1/events/{event_id}")[2],
        "SeatOut": call(stack, "GET", f"/api/v1/events/{event_id}/seats")[2]["items"][0],
        "HoldOut": call(stack, "GET", f"/api/v1/holds/{hold['id']}", user=buyer)[2],
        "BookingOut": call(stack, "GET", headers["Location"], user=buyer)[2],
        "EventSummary": call(stack, "GET", "/api/v1/events?limit=1")[2]["items"][0],
        "WebhookOut": call(stack, "GET", f"/api/v1/events/{event_id}/webhook", user=organizer)[2],
    }
    for name, body in seen.items():
        assert set(body) == declared(schemas, name), name
        assert not set(body) & INTERNAL, name
