"""Redis failing under the cached routes of the 2-worker app (read on its own port, past the edge's micro-cache):
paused, stopped, restarted empty, full.

The claims (notes/redis.md, "Cache-aside", failure modes): every cached route keeps answering, each request paying
at most the cache's own per-command bound (0.1 s, not the client's 1 s) on top of the database's time; a Redis
restarted empty refills and serves nothing older than the database; a Redis that refuses writes (``maxmemory``
reached under ``noeviction``) costs the cached copy, never the request.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from stack.native.stack import NativeStack
from tests.api_users import ApiUser, call, create_event, new_user
from tests.fault_injector import FaultInjector
from tests.polling import wait_for

pytestmark = pytest.mark.fault
# Below the Redis client's own 1 s timeout, so an answer in time proves the cache's short bound was the one used
ANSWER_WITHIN_S = 0.9
ROUNDS = 5


@pytest.fixture(scope="module")
def organizer(stack: NativeStack) -> ApiUser:
    return new_user(stack, organizer=True, label="cache-fault-organizer")


@pytest.fixture
def redis(stack: NativeStack) -> Iterator[Redis]:
    client = Redis.from_url(f"redis://127.0.0.1:{stack.redis.port}/0", socket_timeout=5)
    try:
        yield client
    finally:
        client.close()


def cached_paths(event: dict[str, object]) -> list[str]:
    return [
        f"/api/v1/events/{event['id']}",
        f"/api/v1/events/{event['id']}/availability",
        f"/api/v1/events/{uuid.uuid4()}",  # a missing one: 404 whether or not Redis answers
    ]


def served_without_redis(stack: NativeStack) -> int:
    """``cache_requests_total{outcome="redis-down"}`` plus ``cache_local_lookups_total{outcome="hit"}``, over both
    workers and every cache (the app's own port): reads loaded without Redis, and reads a worker answered from its
    own memory (filled by an earlier read: while Redis is gone the first level still absorbs repeats)."""
    text = httpx.get(f"{stack.app.url}/metrics").text
    return sum(
        int(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if (sample.name, sample.labels.get("outcome"))
        in {("cache_requests_total", "redis-down"), ("cache_local_lookups_total", "hit")}
    )


def app_get(stack: NativeStack, path: str) -> tuple[int, object]:
    """A read on the app's own port: these tests are about the app's caches, and through Nginx a repeat within the
    second would be the edge's micro-cache answering (notes/nginx.md, "The micro-cache")."""
    answer = httpx.get(f"{stack.app.url}{path}")
    return answer.status_code, answer.json()


def every_cached_route_answers_in_time(stack: NativeStack, event: dict[str, object]) -> None:
    expected = [200, 200, 404]
    for round_ in range(ROUNDS):
        for path, status in zip(cached_paths(event), expected, strict=True):
            began = time.monotonic()
            answered, body = app_get(stack, path)
            elapsed = time.monotonic() - began
            assert answered == status, (round_, path, answered, body)
            assert elapsed < ANSWER_WITHIN_S, (round_, path, elapsed)
            if status == 200 and path.endswith(str(event["id"])):
                assert body == event


@pytest.mark.parametrize("verb", ["pause", "stop"])
def test_cached_routes_answer_while_redis_is_gone(
    stack: NativeStack, fault: FaultInjector, organizer: ApiUser, verb: str
) -> None:
    event = create_event(stack, organizer)
    fault("redis", verb)
    before = served_without_redis(stack)
    every_cached_route_answers_in_time(stack, event)
    assert served_without_redis(stack) - before == ROUNDS * len(cached_paths(event))  # each read, once


def test_redis_restarted_empty_refills_and_serves_nothing_stale(
    stack: NativeStack, fault: FaultInjector, organizer: ApiUser, redis: Redis
) -> None:
    event = create_event(stack, organizer)
    path = f"/api/v1/events/{event['id']}"
    etag = call(stack, "GET", path)[1]["etag"]  # cached at version 1
    fault("redis", "stop")
    status, _, patched = call(
        stack, "PATCH", path, user=organizer, body={"title": "Changed"}, headers={"If-Match": etag}
    )
    assert status == 200  # committed; its write-through failed soft
    fault("redis", "start")
    key = f"refstack:cache:{{event:{event['id']}}}"
    assert redis.exists(key) == 0  # restarted empty: no persistence

    def refilled() -> bool:
        assert app_get(stack, path)[1] == patched  # never the cached version 1
        return redis.exists(key) == 1

    wait_for(refilled, timeout_s=5, what="the entry refilled once the workers reconnect")
    stored = redis.get(key)
    assert isinstance(stored, bytes)
    assert stored.startswith(b"2:")  # at the database's version


def test_a_full_redis_refusing_writes_costs_the_cache_not_the_request(
    stack: NativeStack, organizer: ApiUser, redis: Redis
) -> None:
    policy = str(redis.config_get("maxmemory-policy")["maxmemory-policy"])
    limit = str(redis.config_get("maxmemory")["maxmemory"])
    redis.config_set("maxmemory-policy", "noeviction")
    redis.config_set("maxmemory", "1")  # every write is now refused with OOM
    try:
        event = create_event(stack, organizer)  # its write-through is refused
        for path, status in zip(cached_paths(event), [200, 200, 404], strict=True):
            assert app_get(stack, path)[0] == status, path
        assert redis.exists(f"refstack:cache:{{event:{event['id']}}}") == 0
    finally:
        redis.config_set("maxmemory", limit)
        redis.config_set("maxmemory-policy", policy)
    path = f"/api/v1/events/{event['id']}"
    wait_for(
        lambda: app_get(stack, path)[0] == 200 and redis.exists(f"refstack:cache:{{event:{event['id']}}}") == 1,
        timeout_s=5,
        what="the entry stored once Redis accepts writes again",
    )
