"""The edge's micro-cache through the real stack's Nginx: an anonymous read of one event is answered from Nginx for
about a second, a signed-in one never is, and an anonymous buyer sees an organizer's PATCH within the stated bound.

Why count the app's own ``http_requests_total``: ``X-Cache-Status`` is what Nginx says it did; the app's counter is
what the app actually served. See notes/nginx.md, "The micro-cache".
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stack.native.stack import NativeStack
from tests.api_users import ApiUser, call, create_event, new_user
from tests.polling import wait_for
from tests.probes import http

ROUTE = "/events/{event_id}"  # the template under the API router, as the app labels it
# Fresh for 1 s counted in whole seconds (up to 2 s after the fill), then one refill, and the app's own bound for
# another worker (ms; at most its 1 s local TTL): about 3 s, plus 2 s for a busy 2-core machine
SEEN_WITHIN_S = 5.0
# Each of these answers made the app serve one request: the first fill, a refill once the second is over (the
# others meanwhile get UPDATING: the old copy, no request)
FILLS = ("MISS", "EXPIRED")


@pytest.fixture(scope="module")
def organizer(stack: NativeStack) -> ApiUser:
    return new_user(stack, organizer=True, label="organizer")


def served(stack: NativeStack) -> float:
    """How many ``GET /api/v1/events/{event_id}`` the app has answered, over every worker and status."""
    _, _, text = http("GET", f"{stack.app.url}/metrics")
    return sum(
        sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
        if sample.name == "http_requests_total"
        and sample.labels.get("route") == ROUTE
        and sample.labels.get("method") == "GET"
    )


def cache_status(headers: Mapping[str, str]) -> str:
    return headers.get("x-cache-status", "")


def test_a_second_anonymous_read_is_a_hit_and_the_app_serves_only_the_fills(
    stack: NativeStack, organizer: ApiUser
) -> None:
    event = create_event(stack, organizer)
    path = f"/api/v1/events/{event['id']}"
    before = served(stack)
    answers = [call(stack, "GET", path) for _ in range(10)]
    assert [status for status, _, _ in answers] == [200] * 10
    assert all(body == event for _, _, body in answers)
    statuses = [cache_status(headers) for _, headers, _ in answers]
    assert statuses[0] == "MISS"
    assert "HIT" in statuses
    fills = sum(status in FILLS for status in statuses)
    # The app counts a request after it answered: the last one may still be on its way to the counter
    wait_for(lambda: served(stack) - before == fills, timeout_s=5, what=f"the app to have served {fills} read(s)")


def test_an_authorised_read_bypasses_the_cache_and_sees_its_own_patch_at_once(
    stack: NativeStack, organizer: ApiUser
) -> None:
    event = create_event(stack, organizer)
    path = f"/api/v1/events/{event['id']}"
    before = served(stack)
    assert cache_status(call(stack, "GET", path)[1]) == "MISS"  # the anonymous copy is now at the edge
    status, headers, own = call(stack, "GET", path, user=organizer)
    assert (status, cache_status(headers)) == (200, "BYPASS")
    status, _, patched = call(
        stack, "PATCH", path, user=organizer, body={"title": "Moved"}, headers={"If-Match": headers["etag"]}
    )
    assert status == 200
    status, headers, read = call(stack, "GET", path, user=organizer)
    assert (status, cache_status(headers), read["title"]) == (200, "BYPASS", "Moved")
    assert own["title"] == event["title"]
    assert patched == read
    # the anonymous fill and both signed-in reads
    wait_for(lambda: served(stack) - before == 3, timeout_s=5, what="the app to have served three reads")


def test_a_cookie_also_bypasses_the_cache(stack: NativeStack, organizer: ApiUser) -> None:
    path = f"/api/v1/events/{create_event(stack, organizer)['id']}"
    assert cache_status(call(stack, "GET", path)[1]) == "MISS"
    assert cache_status(call(stack, "GET", path, headers={"Cookie": "session=x"})[1]) == "BYPASS"


def test_an_anonymous_buyer_sees_a_patch_within_the_bound_and_until_then_the_cached_answer(
    stack: NativeStack, organizer: ApiUser
) -> None:
    event = create_event(stack, organizer)
    path = f"/api/v1/events/{event['id']}"
    etag = call(stack, "GET", path)[1]["etag"]  # cached at the edge: the old title
    assert call(stack, "PATCH", path, user=organizer, body={"title": "Later"}, headers={"If-Match": etag})[0] == 200
    patched = time.monotonic()
    old: list[str] = []

    def shows_the_patch() -> bool:
        status, headers, body = call(stack, "GET", path)
        assert status == 200
        if body["title"] == "Later":
            return True
        old.append(cache_status(headers))
        return False

    wait_for(shows_the_patch, timeout_s=SEEN_WITHIN_S, what="the anonymous read to show the patch", interval_s=0.05)
    assert time.monotonic() - patched < SEEN_WITHIN_S
    # The old title came from the edge's copy (fresh, or old while one refill runs) or from a refill that reached a
    # worker before the patch's news did; never from a bypass
    assert set(old) <= {"HIT", "UPDATING", "EXPIRED"}


def test_every_answer_has_its_own_request_id_even_from_the_cache(stack: NativeStack, organizer: ApiUser) -> None:
    path = f"/api/v1/events/{create_event(stack, organizer)['id']}"
    answers = [call(stack, "GET", path)[1] for _ in range(5)]
    assert "HIT" in {cache_status(headers) for headers in answers}
    ids = [headers["x-request-id"] for headers in answers]
    assert len(set(ids)) == len(ids)
    hit = call(stack, "GET", path, headers={"X-Request-ID": "mine-123"})[1]
    assert hit["x-request-id"] == "mine-123"  # the client's, not the filler's (the header appears once)


def test_the_edge_answers_a_matching_if_none_match_with_304_from_its_copy(
    stack: NativeStack, organizer: ApiUser
) -> None:
    path = f"/api/v1/events/{create_event(stack, organizer)['id']}"
    before = served(stack)
    status, headers, _ = call(stack, "GET", path)
    assert (status, cache_status(headers)) == (200, "MISS")
    status, again, body = call(stack, "GET", path, headers={"If-None-Match": headers["etag"]})
    assert (status, body, again["etag"]) == (304, None, headers["etag"])
    assert cache_status(again) in {"HIT", "UPDATING", "EXPIRED"}
    fills = 2 if cache_status(again) == "EXPIRED" else 1  # the fill, and a refill if the machine paused too long
    wait_for(lambda: served(stack) - before == fills, timeout_s=5, what=f"the app to have served {fills} read(s)")
