"""Events through Nginx on the real primary: 201 + Location + ETag, 304, 428/412, 403, 404, 422 problems with
``errors``, nothing written on bad input, and keyset pages that stay stable while rows are inserted mid-walk.

See notes/rest_design.md.
"""

from __future__ import annotations

import secrets
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from stack.native.stack import NativeStack
from tests.api_users import ApiUser, call, create_event, event_body, new_user


@pytest.fixture(scope="module")
def organizer(stack: NativeStack) -> ApiUser:
    return new_user(stack, organizer=True, label="organizer")


@pytest.fixture(scope="module")
def user(stack: NativeStack) -> ApiUser:
    return new_user(stack)


def counts(stack: NativeStack) -> str:
    return stack.primary.sql("SELECT (SELECT count(*) FROM event) || '/' || (SELECT count(*) FROM seat)", "refstack")


def test_create_answers_201_with_location_etag_and_every_seat(stack: NativeStack, organizer: ApiUser) -> None:
    body = event_body(rows=3, seats_per_row=4)
    status, headers, event = call(stack, "POST", "/api/v1/events", user=organizer, body=body)
    assert status == 201
    assert headers["location"] == f"/api/v1/events/{event['id']}"
    assert headers["etag"].startswith('"')
    assert {k: event[k] for k in body} == {**body, "starts_at": "2027-06-01T20:00:00Z"}

    status, _, seats = call(stack, "GET", f"/api/v1/events/{event['id']}/seats")
    assert status == 200
    assert [(s["row"], s["number"]) for s in seats["items"]] == [(r, n) for r in range(1, 4) for n in range(1, 5)]
    assert {s["status"] for s in seats["items"]} == {"available"}


def test_users_cannot_create_events_and_nothing_is_written(stack: NativeStack, user: ApiUser) -> None:
    before = counts(stack)
    status, headers, problem = call(stack, "POST", "/api/v1/events", user=user, body=event_body())
    assert status == 403
    assert headers["content-type"].startswith("application/problem+json")
    assert problem["type"] == "https://refstack.dev/problems/forbidden"
    assert counts(stack) == before


def test_anonymous_create_is_401_with_a_bearer_challenge(stack: NativeStack) -> None:
    status, headers, _ = call(stack, "POST", "/api/v1/events", body=event_body())
    assert status == 401
    assert headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"surprise": 1}, "surprise"),
        ({"rows": 101}, "rows"),
        ({"seats_per_row": 0}, "seats_per_row"),
        ({"price_cents": -1}, "price_cents"),
        ({"price_cents": 19.99}, "price_cents"),
        ({"starts_at": "2027-06-01T20:00:00"}, "starts_at"),
        ({"title": ""}, "title"),
    ],
)
def test_bad_input_is_a_422_problem_naming_the_field_and_writes_nothing(
    stack: NativeStack, organizer: ApiUser, change: dict[str, object], field: str
) -> None:
    before = counts(stack)
    status, headers, problem = call(stack, "POST", "/api/v1/events", user=organizer, body=event_body(**change))
    assert status == 422
    assert headers["content-type"].startswith("application/problem+json")
    assert problem["type"] == "https://refstack.dev/problems/validation-error"
    assert [e["loc"][-1] for e in problem["errors"]] == [field]
    assert counts(stack) == before


def test_read_has_an_etag_and_if_none_match_gives_304(stack: NativeStack, organizer: ApiUser) -> None:
    event = create_event(stack, organizer)
    status, headers, body = call(stack, "GET", f"/api/v1/events/{event['id']}")
    assert status == 200
    assert body == event
    status, again, body = call(
        stack, "GET", f"/api/v1/events/{event['id']}", headers={"If-None-Match": headers["etag"]}
    )
    assert (status, body) == (304, None)
    assert again["etag"] == headers["etag"]


@pytest.mark.parametrize("path", ["/api/v1/events/{id}", "/api/v1/events/{id}/seats"])
def test_unknown_event_is_404_problem(stack: NativeStack, path: str) -> None:
    status, headers, problem = call(stack, "GET", path.format(id=uuid.uuid4()))
    assert status == 404
    assert headers["content-type"].startswith("application/problem+json")
    assert problem["type"] == "https://refstack.dev/problems/not-found"


def test_patch_needs_if_match_and_refuses_a_stale_one(stack: NativeStack, organizer: ApiUser) -> None:
    event = create_event(stack, organizer)
    path = f"/api/v1/events/{event['id']}"
    _, headers, _ = call(stack, "GET", path)
    first = headers["etag"]

    status, _, problem = call(stack, "PATCH", path, user=organizer, body={"title": "Renamed"})
    assert status == 428
    assert problem["type"] == "https://refstack.dev/problems/precondition-required"

    status, headers, patched = call(
        stack, "PATCH", path, user=organizer, body={"price_cents": 5000}, headers={"If-Match": first}
    )
    assert status == 200
    assert patched == {**event, "price_cents": 5000}
    assert headers["etag"] != first

    status, _, problem = call(stack, "PATCH", path, user=organizer, body={"title": "Lost"}, headers={"If-Match": first})
    assert status == 412
    assert problem["type"] == "https://refstack.dev/problems/precondition-failed"
    assert call(stack, "GET", path, user=organizer)[2]["title"] == event["title"]  # past the edge's micro-cache


def test_concurrent_patches_from_one_version_have_exactly_one_winner(stack: NativeStack, organizer: ApiUser) -> None:
    event = create_event(stack, organizer)
    path = f"/api/v1/events/{event['id']}"
    etag = call(stack, "GET", path)[1]["etag"]

    def patch(n: int) -> int:
        return call(stack, "PATCH", path, user=organizer, body={"title": f"Take {n}"}, headers={"If-Match": etag})[0]

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(patch, range(8)))
    assert statuses == [200] + [412] * 7
    version = stack.primary.sql(f"SELECT version FROM event WHERE id = '{event['id']}'", "refstack")
    assert version == "2"


def test_only_the_events_organizer_may_patch_it(stack: NativeStack, organizer: ApiUser, user: ApiUser) -> None:
    event = create_event(stack, organizer)
    path = f"/api/v1/events/{event['id']}"
    etag = call(stack, "GET", path)[1]["etag"]
    other = new_user(stack, organizer=True, label="rival")
    for caller in (other, user):
        status, _, _ = call(stack, "PATCH", path, user=caller, body={"title": "Mine"}, headers={"If-Match": etag})
        assert status == 403
    status, _, _ = call(
        stack,
        "PATCH",
        f"/api/v1/events/{uuid.uuid4()}",
        user=organizer,
        body={"title": "x"},
        headers={"If-Match": etag},
    )
    assert status == 404


@pytest.mark.parametrize(
    "body",
    [{}, {"title": None}, {"rows": 5}, {"title": "ok", "surprise": True}],
    ids=["empty", "null", "rows", "extra"],
)
def test_patch_refuses_bad_bodies_with_422(stack: NativeStack, organizer: ApiUser, body: dict[str, Any]) -> None:
    event = create_event(stack, organizer)
    path = f"/api/v1/events/{event['id']}"
    etag = call(stack, "GET", path)[1]["etag"]
    status, _, problem = call(stack, "PATCH", path, user=organizer, body=body, headers={"If-Match": etag})
    assert status == 422
    assert problem["errors"]
    assert call(stack, "GET", path, user=organizer)[1]["etag"] == etag  # past the edge's micro-cache


@pytest.mark.parametrize("query", ["limit=101", "limit=0", "cursor=not-a-cursor", "starts_after=2027-01-01T00:00:00"])
def test_bad_list_queries_are_422_problems(stack: NativeStack, query: str) -> None:
    status, headers, problem = call(stack, "GET", f"/api/v1/events?{query}")
    assert status == 422
    assert headers["content-type"].startswith("application/problem+json")
    assert problem["errors"][0]["loc"][0] == "query"


def _walk(stack: NativeStack, query: str, *, between_pages: Any = None) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    while True:
        suffix = f"&cursor={cursor}" if cursor else ""
        status, _, page = call(stack, "GET", f"/api/v1/events?{query}{suffix}")
        assert status == 200
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
        if between_pages is not None:
            between_pages()
            between_pages = None


def test_keyset_walk_neither_repeats_nor_skips_when_rows_are_inserted_mid_walk(
    stack: NativeStack, organizer: ApiUser
) -> None:
    city = f"Walk-{secrets.token_hex(4)}"
    days = [3, 5, 5, 7, 9, 11]  # two events share a start: the id breaks the tie
    made = [create_event(stack, organizer, city=city, starts_at=f"2027-07-{d:02d}T19:00:00Z") for d in days]
    expected = [e["id"] for e in sorted(made, key=lambda e: (e["starts_at"], e["id"]))]
    assert _walk(stack, f"city={city}&limit=2") == expected

    inserted: list[dict[str, Any]] = []

    def insert_behind_and_ahead() -> None:
        inserted.append(create_event(stack, organizer, city=city, starts_at="2027-07-01T19:00:00Z"))
        inserted.append(create_event(stack, organizer, city=city, starts_at="2027-07-30T19:00:00Z"))

    walked = _walk(stack, f"city={city}&limit=2", between_pages=insert_behind_and_ahead)
    behind, ahead = (e["id"] for e in inserted)
    assert walked == [*expected, ahead]  # the row behind the cursor is not seen; nothing repeats or goes missing
    assert behind not in walked


def test_list_filters_by_time_and_counts_available_seats(stack: NativeStack, organizer: ApiUser) -> None:
    city = f"Filter-{secrets.token_hex(4)}"
    early = create_event(stack, organizer, city=city, starts_at="2027-08-01T10:00:00Z", rows=1, seats_per_row=5)
    create_event(stack, organizer, city=city, starts_at="2027-09-01T10:00:00Z")
    query = f"city={city}&starts_after=2027-07-31T00:00:00Z&starts_before=2027-08-31T00:00:00Z"
    status, _, page = call(stack, "GET", f"/api/v1/events?{query}")
    assert status == 200
    assert page["next_cursor"] is None
    assert [(i["id"], i["seats_available"]) for i in page["items"]] == [(early["id"], 5)]
