"""API1:2023 Broken object-level authorization: Mallory tries Alice's booking, hold and webhook by id, through Nginx.

Every attempt is a 404 whose problem is the same as for an id that names nothing (only the echoed id and request id
differ), so the answer does not even confirm the object exists; and nothing changed: the hold is still Alice's,
nothing was charged, the webhook is untouched. The owner checks live in the queries (app/services/), not in the
routes. See notes/security.md, "Object-level authorization".
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from stack.native.stack import NativeStack
from tests.api_users import ApiUser, call, create_event, new_user
from tests.bookings import book, charges, held


def same_problem(stack: NativeStack, method: str, path: str, victim_id: str, user: ApiUser, body: Any = None) -> None:
    """Asking for someone else's object answers exactly like asking for an object that does not exist."""
    foreign = call(stack, method, path.format(victim_id), user=user, body=body)
    missing_id = str(uuid.uuid4())
    missing = call(stack, method, path.format(missing_id), user=user, body=body)
    assert foreign[0] == missing[0] == 404, (foreign, missing)
    assert {**foreign[2], "detail": "", "instance": "", "request_id": ""} == {
        **missing[2],
        "detail": "",
        "instance": "",
        "request_id": "",
    }
    assert foreign[2]["detail"].replace(victim_id, missing_id) == missing[2]["detail"]


@pytest.fixture(scope="module")
def organizer(stack: NativeStack) -> ApiUser:
    return new_user(stack, organizer=True, label="api1-organizer")


@pytest.mark.usefixtures("closed_breakers")
def test_another_users_booking_and_hold_are_404_and_untouched(
    stack: NativeStack, organizer: ApiUser, simulator: str
) -> None:
    alice, mallory = new_user(stack, label="alice"), new_user(stack, label="mallory")
    booked = held(stack, organizer, alice, seats=1)
    status, headers, _ = book(stack, alice, booked["id"])
    assert status == 201
    booking_id = headers["Location"].rsplit("/", 1)[1]
    same_problem(stack, "GET", "/api/v1/bookings/{}", booking_id, mallory)

    hold = held(stack, organizer, alice, seats=1)
    same_problem(stack, "GET", "/api/v1/holds/{}", hold["id"], mallory)
    same_problem(stack, "DELETE", "/api/v1/holds/{}", hold["id"], mallory)
    status, _, problem = call(stack, "POST", "/api/v1/bookings", user=mallory, body={"hold_id": hold["id"]})
    assert (status, problem["type"].rsplit("/", 1)[1]) == (404, "hold-not-found")
    assert charges(simulator, hold["id"]) == []
    assert call(stack, "GET", f"/api/v1/holds/{hold['id']}", user=alice)[2]["status"] == "active"


def test_another_organizers_webhook_is_404_and_untouched(stack: NativeStack, organizer: ApiUser) -> None:
    rival = new_user(stack, organizer=True, label="rival-organizer")
    event_id = str(create_event(stack, organizer)["id"])
    url = "https://93.184.215.14/hooks/mine"
    assert call(stack, "PUT", f"/api/v1/events/{event_id}/webhook", user=organizer, body={"url": url})[0] == 200

    path = "/api/v1/events/{}/webhook"
    same_problem(stack, "GET", path, event_id, rival)
    same_problem(stack, "PUT", path, event_id, rival, body={"url": "https://93.184.215.14/hooks/stolen"})
    same_problem(stack, "DELETE", path, event_id, rival)
    same_problem(stack, "POST", path + "/ping", event_id, rival)
    assert call(stack, "GET", path.format(event_id), user=organizer)[2]["url"] == url
