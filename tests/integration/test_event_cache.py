"""Cache-aside for the event page, counted: a cached read or 304 costs no statement, 200 concurrent misses over two
"workers" cost exactly one, a write is seen at once, an older fill never undoes a newer write, a hot key is
refreshed before it expires, and availability converges within its stated bound after a hold.

The statement counts come from the app's own engines (tests/statement_log.py), primary and replica both, in
two in-process apps that share the stack's Redis and database: two lifespans, so two coalescing maps, the way two
uvicorn workers have. See notes/redis.md, "Cache-aside".
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack, contextmanager

import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from app.api.deps import Reads, reads
from app.api.v1.event_reads import EVENT_PATH
from app.cache.aside import CacheAside, CachePolicy
from app.services.event_cache import COUNT_CODEC
from app.services.events import EventRecord
from app.settings import Settings
from stack.native.stack import NativeStack, asyncpg_url
from tests.api_users import ApiUser, call, create_event, new_user
from tests.in_process_app import Running, running
from tests.polling import wait_for, wait_for_async
from tests.statement_log import Statement, recorded_statements

STAMPEDE = 200
# Each worker's copy of an entry lives at most this long (the default): the bound when an announcement is late
LOCAL_TTL_S = Settings().local_cache_ttl_s
AVAILABILITY_TTL_S = 1.0
# The availability bound: its TTL plus 10 % jitter, plus the replica's lag (milliseconds here) and a request's time
AVAILABILITY_BOUND_S = AVAILABILITY_TTL_S * 1.1 + 1.0


@pytest.fixture(scope="module")
def organizer(stack: NativeStack) -> ApiUser:
    return new_user(stack, organizer=True, label="cache-organizer")


def app_settings(stack: NativeStack) -> Settings:
    return Settings.model_validate(
        {
            "env": "test",
            "database_url": asyncpg_url(stack.primary.url),
            "replica_url": asyncpg_url(stack.replica.url),
            "redis_url": stack.redis.url,
            "amqp_url": stack.rabbitmq.url,
            "payments_url": stack.payments.url,
            "db_pool_size": 15,
            "sweeper_enabled": False,
            "reconciler_enabled": False,
            "outbox_relay_enabled": False,  # its polls would be counted as the app's statements
            "cache_fill_wait_s": 5.0,  # the winner's one query must never be outwaited on a busy machine
            # nor may a Redis call past the production 0.1 s count as "Redis down" and load from the database (a
            # full run saw 2 statements for the 200 misses): the counts here are about the guard, not the timeout,
            # which tests/faults/test_cache_outages.py proves with Redis really paused
            "cache_redis_timeout_s": 1.0,
        }
    )


@pytest.fixture
async def workers(stack: NativeStack) -> AsyncIterator[list[Running]]:
    """Two apps in this process, like two uvicorn workers: each its own pools and coalescing, one Redis."""
    async with AsyncExitStack() as apps:
        yield [await apps.enter_async_context(running(app_settings(stack))) for _ in range(2)]


@pytest.fixture
async def holding_worker(stack: NativeStack) -> AsyncIterator[Running]:
    """One app, subscribed to the invalidation channel (subscribing flushes its memory: a copy held before that would
    vanish between a check and a read, as a full run once saw), whose memory keeps an event 10 s rather than 1 s."""
    settings = app_settings(stack).model_copy(update={"local_cache_ttl_s": 10.0})
    async with running(settings) as worker:

        async def subscribed() -> bool:
            text = (await worker.client.get("/metrics")).text
            return any(
                sample.value == 1.0
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == "cache_invalidation_subscribed"
            )

        await wait_for_async(subscribed, timeout_s=10, what="the worker subscribed to the invalidation channel")
        yield worker


@pytest.fixture
async def redis(stack: NativeStack) -> AsyncIterator[Redis]:
    client = Redis.from_url(f"redis://127.0.0.1:{stack.redis.port}/0")
    try:
        yield client
    finally:
        await client.aclose()


@contextmanager
def event_reads(workers: list[Running]) -> Iterator[list[Statement]]:
    """Every ``SELECT … FROM event`` the apps send to either engine inside the block (filled when it ends)."""
    found: list[Statement] = []
    with ExitStack() as recording:
        logs = [
            recording.enter_context(recorded_statements(engine))
            for worker in workers
            for engine in (worker.state["engines"].primary, worker.state["engines"].replica)
        ]
        yield found
    found.extend(statement for log in logs for statement in log if "FROM event" in statement.sql)


def event_cache(worker: Running) -> CacheAside[EventRecord]:
    return worker.state["event_caches"].events


async def cache_outcomes(worker: Running, level: str = "cache_requests_total") -> Counter[str]:
    """``cache_requests_total{cache="event"}`` (Redis) or ``cache_local_lookups_total`` (the worker's memory) of one
    in-process app (its own registry), by outcome."""
    text = (await worker.client.get("/metrics")).text
    return Counter(
        {
            sample.labels["outcome"]: int(sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == level and sample.labels["cache"] == "event"
        }
    )


async def test_200_concurrent_misses_over_two_workers_cost_exactly_one_query(
    stack: NativeStack, organizer: ApiUser, workers: list[Running], redis: Redis
) -> None:
    event = create_event(stack, organizer)  # its write-through fills the cache: empty it for a cold miss
    await redis.delete(event_cache(workers[0]).key(event["id"]))
    path = f"/api/v1/events/{event['id']}"
    with event_reads(workers) as selects:
        answers = await asyncio.gather(*(workers[n % 2].client.get(path) for n in range(STAMPEDE)))
    assert [answer.status_code for answer in answers] == [200] * STAMPEDE
    assert {answer.headers["etag"] for answer in answers} == {f'"{uuid.UUID(event["id"]).hex}-1"'}
    assert len(selects) == 1, selects
    outcomes = sum([await cache_outcomes(worker) for worker in workers], Counter[str]())
    local = sum([await cache_outcomes(worker, "cache_local_lookups_total") for worker in workers], Counter[str]())
    assert outcomes["miss"] == 1
    # each request reported once: answered from its worker's memory, or by Redis (the rest hit, joined or waited)
    assert local["hit"] + outcomes.total() == STAMPEDE
    assert set(outcomes) <= {"miss", "hit", "coalesced", "waited"}, outcomes


async def test_a_cached_read_and_its_304_cost_no_query(
    stack: NativeStack, organizer: ApiUser, workers: list[Running]
) -> None:
    event = create_event(stack, organizer)
    path = f"/api/v1/events/{event['id']}"
    first = await workers[0].client.get(path)
    with event_reads(workers) as selects:
        again = await workers[1].client.get(path)
        conditional = await workers[0].client.get(path, headers={"If-None-Match": first.headers["etag"]})
    assert (again.status_code, again.json()) == (200, event)
    assert (conditional.status_code, conditional.headers["etag"]) == (304, first.headers["etag"])
    assert selects == []


def route_entered() -> Reads:
    raise RuntimeError("the event route was entered")


async def served_event_reads(worker: Running) -> int:
    """``http_requests_total`` of the event read answered 200 or 304 (the access log's own label)."""
    text = (await worker.client.get("/metrics")).text
    return sum(
        int(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "http_requests_total"
        and sample.labels["route"] == EVENT_PATH
        and sample.labels["status"] in {"200", "304"}
    )


async def test_an_anonymous_read_the_worker_holds_is_answered_before_routing_with_the_routes_bytes(
    stack: NativeStack, organizer: ApiUser, holding_worker: Running
) -> None:
    """With the route's ``reads`` dependency made to fail, only a read answered before routing can succeed: an
    anonymous read of an event this worker holds, 200 and 304, byte for byte what the route answered. A request
    with ``Authorization`` or of an id the worker does not hold still reaches the route (here: its failure)."""
    event = create_event(stack, organizer)
    path = f"/api/v1/events/{event['id']}"
    worker = holding_worker
    by_route = await worker.client.get(path)  # a miss: the route reads, answers and fills this worker's memory
    assert by_route.status_code == 200

    async def held_by_the_worker() -> bool:  # a fill that began before the worker's subscription was made is dropped
        return (await worker.client.get(path)).status_code == 200 and event_cache(worker).held(event["id"]) is not None

    await wait_for_async(held_by_the_worker, timeout_s=5, what="the event held in the worker's memory")
    served = await served_event_reads(worker)
    worker.app.dependency_overrides[reads] = route_entered
    try:
        with event_reads([worker]) as selects:
            held = await worker.client.get(path)
            conditional = await worker.client.get(path, headers={"If-None-Match": by_route.headers["etag"]})
        signed_in = await worker.client.get(path, headers={"Authorization": "Bearer not-a-token"})
        not_held = await worker.client.get(f"/api/v1/events/{create_event(stack, organizer)['id']}")
    finally:
        worker.app.dependency_overrides.clear()
    assert held.content == by_route.content
    for header in ("etag", "content-type", "content-length"):
        assert held.headers[header] == by_route.headers[header]
    assert (conditional.status_code, conditional.headers["etag"], conditional.content) == (
        304,
        held.headers["etag"],
        b"",
    )
    assert selects == []
    assert await served_event_reads(worker) == served + 2  # labelled as the route, as the router would have
    assert (signed_in.status_code, not_held.status_code) == (500, 500)  # the route was entered: its failure


async def test_a_held_copy_older_than_the_clients_is_not_answered_before_routing(
    stack: NativeStack, organizer: ApiUser, workers: list[Running]
) -> None:
    event = create_event(stack, organizer)
    path = f"/api/v1/events/{event['id']}"
    worker = workers[0]

    async def held_by_the_worker() -> bool:  # version 1; a fill begun before the worker subscribed is not kept
        return (await worker.client.get(path)).status_code == 200 and event_cache(worker).held(event["id"]) is not None

    await wait_for_async(held_by_the_worker, timeout_s=5, what="version 1 held in the worker's memory")
    stack.primary.sql(f"UPDATE event SET version = 2, title = 'Ahead' WHERE id = '{event['id']}'", "refstack")
    newer = f'"{uuid.UUID(event["id"]).hex}-2"'
    answer = await worker.client.get(path, headers={"If-None-Match": f'{newer}, "{uuid.UUID(event["id"]).hex}-1"'})
    assert (answer.status_code, answer.headers["etag"]) == (304, newer)  # the primary's version, not the held one


async def test_a_missing_event_is_cached_as_missing(workers: list[Running]) -> None:
    path = f"/api/v1/events/{uuid.uuid4()}"
    with event_reads(workers) as first:
        assert (await workers[0].client.get(path)).status_code == 404
    with event_reads(workers) as again:
        answer = await workers[1].client.get(path)
    assert (answer.status_code, answer.headers["content-type"]) == (404, "application/problem+json")
    assert (len(first), again) == (1, [])


async def test_a_patch_is_seen_at_once_and_an_older_fill_cannot_undo_it(
    stack: NativeStack, organizer: ApiUser, workers: list[Running]
) -> None:
    event = create_event(stack, organizer)
    path = f"/api/v1/events/{event['id']}"
    etag = (await workers[0].client.get(path)).headers["etag"]
    cached = await event_cache(workers[0]).peek(event["id"])
    assert cached is not None
    assert cached.value is not None
    assert cached.version == 1
    status, _, _ = call(stack, "PATCH", path, user=organizer, body={"title": "Renamed"}, headers={"If-Match": etag})
    assert status == 200
    with event_reads(workers) as selects:
        seen = await workers[1].client.get(path)
    assert (seen.json()["title"], selects) == ("Renamed", [])  # written through after the commit

    await event_cache(workers[0]).put(event["id"], cached.value)  # a slow fill that read version 1
    after = await event_cache(workers[1]).peek(event["id"])
    assert after is not None
    assert after.version == 2
    assert (await workers[0].client.get(path)).json()["title"] == "Renamed"


async def test_a_client_ahead_of_the_cache_is_answered_by_the_primary(
    stack: NativeStack, organizer: ApiUser, workers: list[Running]
) -> None:
    event = create_event(stack, organizer)
    path = f"/api/v1/events/{event['id']}"
    assert (await workers[0].client.get(path)).status_code == 200  # cached at version 1
    stack.primary.sql(
        f"UPDATE event SET version = 2, title = 'Behind the cache' WHERE id = '{event['id']}'", "refstack"
    )
    newer = f'"{uuid.UUID(event["id"]).hex}-2"'
    answer = await workers[1].client.get(path, headers={"If-None-Match": newer})
    assert (answer.status_code, answer.headers["etag"]) == (304, newer)

    async def primary_copy_cached() -> bool:  # worker 0 drops its own older copy when the write-through is announced
        return bool((await workers[0].client.get(path)).json()["title"] == "Behind the cache")

    await wait_for_async(primary_copy_cached, timeout_s=LOCAL_TTL_S, what="the primary's copy, cached", interval_s=0.01)


async def test_a_hot_key_is_refreshed_before_it_expires(redis: Redis) -> None:
    """Read every 10 ms for 2.5 TTLs: one miss at the start, then only refreshes while the entry still exists (the
    refresh window, the last fifth of a 2 s life, is far wider than a busy machine's pause between reads)."""
    policy = CachePolicy(ttl_s=2.0, missing_ttl_s=2.0, redis_timeout_s=0.5, lock_s=2.0, wait_s=1.0)
    outcomes: list[str] = []
    cache = CacheAside(
        redis, f"hot-{uuid.uuid4().hex}", policy, COUNT_CODEC, lambda _cache, seen: outcomes.append(seen)
    )
    key = cache.key("k")
    present_at_load: list[int] = []

    async def load() -> int:
        present_at_load.append(await redis.exists(key))
        return len(present_at_load)

    try:
        until = time.monotonic() + 5.0
        while time.monotonic() < until:
            assert await cache.get("k", load) is not None
            await asyncio.sleep(0.01)  # sleep-ok: the pace of the readers, not a synchronisation
    finally:
        await redis.delete(key)
    assert present_at_load[0] == 0
    assert Counter(outcomes)["miss"] == 1
    assert set(outcomes) == {"miss", "hit", "refresh"}
    assert present_at_load[1:] == [1] * (len(present_at_load) - 1)
    assert len(present_at_load) >= 3


def test_availability_converges_within_its_bound_after_a_hold(stack: NativeStack, organizer: ApiUser) -> None:
    buyer = new_user(stack, label="cache-buyer")
    event = create_event(stack, organizer, rows=2, seats_per_row=3)
    path = f"/api/v1/events/{event['id']}/availability"
    assert call(stack, "GET", path)[2] == {"event_id": event["id"], "seats_available": 6}
    seat = call(stack, "GET", f"/api/v1/events/{event['id']}/seats")[2]["items"][0]["id"]
    status, _, hold = call(stack, "POST", f"/api/v1/events/{event['id']}/holds", user=buyer, body={"seat_ids": [seat]})
    assert status == 201, hold
    wait_for(
        lambda: call(stack, "GET", path)[2]["seats_available"] == 5,
        timeout_s=AVAILABILITY_BOUND_S,
        what=f"availability to show the hold within {AVAILABILITY_BOUND_S} s",
        interval_s=0.05,
    )
    status, headers, _ = call(stack, "GET", f"/api/v1/events/{uuid.uuid4()}/availability")
    assert (status, headers["content-type"]) == (404, "application/problem+json")


async def test_anonymous_list_pages_are_shared_until_an_event_is_created(
    stack: NativeStack, organizer: ApiUser, workers: list[Running]
) -> None:
    first = create_event(stack, organizer)
    path = f"/api/v1/events?city={first['city']}"
    assert [item["id"] for item in (await workers[0].client.get(path)).json()["items"]] == [first["id"]]
    with event_reads(workers) as selects:
        again = await workers[1].client.get(path)
    assert ([item["id"] for item in again.json()["items"]], selects) == ([first["id"]], [])

    second = create_event(stack, organizer, city=first["city"], starts_at="2027-06-02T20:00:00+00:00")

    async def both_listed() -> bool:  # the create retired the page; only the replica's lag can delay the new one
        page = (await workers[0].client.get(path)).json()["items"]
        return [item["id"] for item in page] == [first["id"], second["id"]]

    await wait_for_async(both_listed, timeout_s=2, what="the new event on the list page")
    with event_reads(workers) as signed_in:  # a signed-in reader is never served a shared page
        assert (await workers[1].client.get(path, headers=organizer.headers)).status_code == 200
    assert len(signed_in) == 1


async def test_a_refresh_that_fails_serves_the_entry_it_meant_to_replace(redis: Redis) -> None:
    policy = CachePolicy(ttl_s=1.0, missing_ttl_s=1.0, redis_timeout_s=0.5, lock_s=1.0, wait_s=1.0)
    outcomes: list[str] = []
    cache = CacheAside(
        redis, f"flaky-{uuid.uuid4().hex}", policy, COUNT_CODEC, lambda _cache, seen: outcomes.append(seen)
    )
    loads = 0

    async def load() -> int:
        nonlocal loads
        loads += 1
        if loads > 1:
            raise OSError("the database is down")
        return 7

    async def refresh_failed() -> bool:
        assert await cache.get("k", load) == 7  # never the loader's error while the entry is within its TTL
        return "refresh-failed" in outcomes

    try:
        await wait_for_async(refresh_failed, timeout_s=3, what="a refresh that fails", interval_s=0.01)
    finally:
        await redis.delete(cache.key("k"), f"{cache.key('k')}:lock")
    assert (outcomes[0], outcomes[-1], loads) == ("miss", "refresh-failed", 2)
