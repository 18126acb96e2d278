"""Holds through Nginx on the real primary: 201 + Location, all-or-nothing 409, owner-only reads, idempotent
release, 422 for requests that can never be valid, and the app's own sweeper releasing an expired hold.

See notes/rest_design.md and notes/postgres.md, "Contention".
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from stack.native.stack import NativeStack
from tests.api_users import ApiUser, call, create_event, new_user
from tests.polling import wait_for


@pytest.fixture(scope="module")
def organizer(stack: NativeStack) -> ApiUser:
    return new_user(stack, organizer=True, label="organizer")


@pytest.fixture(scope="module")
def alice(stack: NativeStack) -> ApiUser:
    return new_user(stack, label="alice")


@pytest.fixture(scope="module")
def bob(stack: NativeStack) -> ApiUser:
    return new_user(stack, label="bob")


def seats_of(stack: NativeStack, event_id: str) -> list[dict[str, Any]]:
    status, _, body = call(stack, "GET", f"/api/v1/events/{event_id}/seats")
    assert status == 200
    return list(body["items"])


def statuses(stack: NativeStack, event_id: str) -> dict[str, str]:
    return {seat["id"]: seat["status"] for seat in seats_of(stack, event_id)}


def hold_count(stack: NativeStack, event_id: str) -> int:
    return int(stack.primary.sql(f"SELECT count(*) FROM hold WHERE event_id = '{event_id}'", "refstack"))


def hold(stack: NativeStack, user: ApiUser, event_id: str, seat_ids: list[str]) -> tuple[int, dict[str, str], Any]:
    return call(stack, "POST", f"/api/v1/events/{event_id}/holds", user=user, body={"seat_ids": seat_ids})


@pytest.fixture
def event(stack: NativeStack, organizer: ApiUser) -> dict[str, Any]:
    made = create_event(stack, organizer, rows=1, seats_per_row=4)
    return {**made, "seat_ids": [seat["id"] for seat in seats_of(stack, made["id"])]}


def test_a_hold_is_201_with_location_and_its_seats_turn_held(
    stack: NativeStack, alice: ApiUser, event: dict[str, Any]
) -> None:
    wanted = event["seat_ids"][:2]
    status, headers, held = hold(stack, alice, event["id"], wanted)
    assert status == 201
    assert headers["location"] == f"/api/v1/holds/{held['id']}"
    assert (held["event_id"], sorted(held["seat_ids"]), held["status"]) == (event["id"], sorted(wanted), "active")
    assert [statuses(stack, event["id"])[s] for s in event["seat_ids"]] == ["held", "held", "available", "available"]

    city_page = call(stack, "GET", f"/api/v1/events?city={event['city']}")[2]
    assert [item["seats_available"] for item in city_page["items"]] == [2]

    status, _, read = call(stack, "GET", headers["location"], user=alice)
    assert status == 200
    assert read == held


def test_a_hold_touching_any_taken_seat_holds_nothing(
    stack: NativeStack, alice: ApiUser, bob: ApiUser, event: dict[str, Any]
) -> None:
    first, second, third, _ = event["seat_ids"]
    assert hold(stack, alice, event["id"], [second])[0] == 201
    before = hold_count(stack, event["id"])

    status, headers, problem = hold(stack, bob, event["id"], [first, second, third])
    assert status == 409
    assert headers["content-type"].startswith("application/problem+json")
    assert problem["type"] == "https://refstack.dev/problems/seat-not-available"
    assert problem["seat_ids"] == [second]
    assert statuses(stack, event["id"])[first] == "available"
    assert statuses(stack, event["id"])[third] == "available"
    assert hold_count(stack, event["id"]) == before


def test_a_seat_of_another_event_is_409_and_holds_nothing(
    stack: NativeStack, organizer: ApiUser, alice: ApiUser, event: dict[str, Any]
) -> None:
    other = create_event(stack, organizer, rows=1, seats_per_row=1)
    foreign = seats_of(stack, other["id"])[0]["id"]
    status, _, problem = hold(stack, alice, event["id"], [event["seat_ids"][0], foreign])
    assert status == 409
    assert problem["seat_ids"] == [foreign]
    assert set(statuses(stack, event["id"]).values()) == {"available"}
    assert hold_count(stack, event["id"]) == 0


def test_unknown_event_is_404(stack: NativeStack, alice: ApiUser) -> None:
    status, _, problem = hold(stack, alice, str(uuid.uuid4()), [str(uuid.uuid4())])
    assert status == 404
    assert problem["type"] == "https://refstack.dev/problems/not-found"


@pytest.mark.parametrize(
    "body",
    [
        {"seat_ids": []},
        {"seat_ids": ["same", "same"]},
        {"seat_ids": "eleven"},
        {"seat_ids": ["not-a-uuid"]},
        {"seats": []},
        {"seat_ids": ["x"], "surprise": 1},
    ],
    ids=["empty", "duplicate", "too-many", "not-uuid", "unknown-field", "extra-field"],
)
def test_requests_that_can_never_be_valid_are_422_and_write_nothing(
    stack: NativeStack, alice: ApiUser, event: dict[str, Any], body: dict[str, Any]
) -> None:
    seat = event["seat_ids"][0]
    expand = {"same": seat, "x": seat}
    if body.get("seat_ids") == "eleven":
        body = {"seat_ids": [str(uuid.uuid4()) for _ in range(11)]}  # max_seats_per_hold defaults to 10
    elif isinstance(body.get("seat_ids"), list):
        body = {**body, "seat_ids": [expand.get(s, s) for s in body["seat_ids"]]}
    status, _, problem = call(stack, "POST", f"/api/v1/events/{event['id']}/holds", user=alice, body=body)
    assert status == 422
    assert problem["errors"]
    assert hold_count(stack, event["id"]) == 0
    assert set(statuses(stack, event["id"]).values()) == {"available"}


def test_holds_are_private_and_need_a_token(
    stack: NativeStack, alice: ApiUser, bob: ApiUser, event: dict[str, Any]
) -> None:
    location = hold(stack, alice, event["id"], event["seat_ids"][:1])[1]["location"]
    assert call(stack, "GET", location, user=bob)[0] == 404
    assert call(stack, "DELETE", location, user=bob)[0] == 404
    assert call(stack, "GET", f"/api/v1/holds/{uuid.uuid4()}", user=alice)[0] == 404
    assert call(stack, "GET", location)[0] == 401
    assert hold(stack, ApiUser("", "", {}), event["id"], event["seat_ids"][1:2])[0] == 401


def test_release_gives_the_seats_back_and_is_idempotent(
    stack: NativeStack, alice: ApiUser, bob: ApiUser, event: dict[str, Any]
) -> None:
    location = hold(stack, alice, event["id"], event["seat_ids"][:3])[1]["location"]
    assert call(stack, "DELETE", location, user=alice)[0] == 204
    assert set(statuses(stack, event["id"]).values()) == {"available"}
    assert call(stack, "DELETE", location, user=alice)[0] == 204
    assert call(stack, "GET", location, user=alice)[2]["status"] == "released"
    assert hold(stack, bob, event["id"], event["seat_ids"][:3])[0] == 201


def test_a_hold_being_paid_for_cannot_be_released(stack: NativeStack, alice: ApiUser, event: dict[str, Any]) -> None:
    _, headers, held = hold(stack, alice, event["id"], event["seat_ids"][:1])
    stack.primary.sql(f"UPDATE hold SET status = 'paying' WHERE id = '{held['id']}'", "refstack")
    status, _, problem = call(stack, "DELETE", headers["location"], user=alice)
    assert status == 409
    assert problem["type"] == "https://refstack.dev/problems/hold-not-releasable"
    assert statuses(stack, event["id"])[event["seat_ids"][0]] == "held"


def test_the_apps_own_sweeper_releases_an_expired_hold(
    stack: NativeStack, alice: ApiUser, event: dict[str, Any]
) -> None:
    _, headers, held = hold(stack, alice, event["id"], event["seat_ids"][:2])
    stack.primary.sql(f"UPDATE hold SET expires_at = now() - interval '1 second' WHERE id = '{held['id']}'", "refstack")
    swept = wait_for(
        lambda: call(stack, "GET", headers["location"], user=alice)[2]["status"] == "expired",
        timeout_s=10,
        what="the app's sweeper to expire the hold",
    )
    assert swept
    assert set(statuses(stack, event["id"]).values()) == {"available"}
