"""Two levels kept coherent: a write through one worker (or instance) reaches every other worker's memory through the
invalidation channel, the writer reads its own write at once, and when messages are lost (Redis restarted or
frozen) no worker serves an old value past the local TTL.

First two in-process apps on the stack's Redis and database ("two instances") whose local TTL (10 s) is far longer
than the wait, so only the message can explain what the other instance sees; then the real 2-worker app of the
session stack (local TTL 1 s), one connection pinned to each worker (bench/worker_connections.py). Every wait is a
deadline-bound poll. See notes/redis.md, "Two levels: a worker's memory in front of Redis".
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.settings import Settings
from bench.worker_connections import WorkerConnection, two_workers
from stack.native.stack import NativeStack, asyncpg_url
from tests.api_users import ApiUser, create_event, new_user
from tests.fault_injector import FaultInjector
from tests.in_process_app import Running, running
from tests.polling import wait_for, wait_for_async

# The in-process instances hold entries this long: a wait far shorter than it proves the message did the work
LONG_LOCAL_TTL_S = 10.0
MESSAGE_WAIT_S = 2.0
# The session stack's app runs with the default local TTL: the bound on staleness when every message is lost
STACK_LOCAL_TTL_S = Settings().local_cache_ttl_s
# Time for one more request after the bound on a busy 2-core machine (polls only; no assertion is timed by it)
REQUEST_SLACK_S = 2.0
# A create or a patch announces two things: the event's new version and the list's new generation
MESSAGES_PER_WRITE = 2


@pytest.fixture(scope="module")
def organizer(stack: NativeStack) -> ApiUser:
    return new_user(stack, organizer=True, label="two-level-organizer")


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


# --- two instances in this process -------------------------------------------------------------------------------


def instance_settings(stack: NativeStack) -> Settings:
    return Settings.model_validate(
        {
            "env": "test",
            "database_url": asyncpg_url(stack.primary.url),
            "replica_url": asyncpg_url(stack.replica.url),
            "redis_url": stack.redis.url,
            "amqp_url": stack.rabbitmq.url,
            "payments_url": stack.payments.url,
            "sweeper_enabled": False,
            "outbox_relay_enabled": False,  # its polls would be counted as the app's statements
            "reconciler_enabled": False,
            "local_cache_ttl_s": LONG_LOCAL_TTL_S,
        }
    )


async def instance_metric(instance: Running, name: str, **labels: str) -> float:
    return metric((await instance.client.get("/metrics")).text, name, **labels)


@pytest.fixture
async def instances(stack: NativeStack) -> AsyncIterator[list[Running]]:
    """Two apps in this process, each subscribed to the invalidation channel before the test begins."""
    async with AsyncExitStack() as apps:
        started = [await apps.enter_async_context(running(instance_settings(stack))) for _ in range(2)]
        for instance in started:

            async def subscribed(instance: Running = instance) -> bool:
                return await instance_metric(instance, "cache_invalidation_subscribed") == 1.0

            await wait_for_async(subscribed, timeout_s=10, what="the instance subscribed to the invalidation channel")
        yield started


async def received_exactly(instance: Running, count: float) -> None:
    """Wait until ``instance`` has received ``count`` invalidation messages in all, then check it is not more."""

    async def reached() -> bool:
        return await instance_metric(instance, "cache_invalidations_total", outcome="received") >= count

    await wait_for_async(reached, timeout_s=MESSAGE_WAIT_S, what=f"{count} invalidation messages received")
    assert await instance_metric(instance, "cache_invalidations_total", outcome="received") == count


async def title_of(instance: Running, path: str, headers: dict[str, str] | None = None) -> str:
    answer = await instance.client.get(path, headers=headers)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["title"])


async def test_a_patch_through_one_instance_reaches_the_others_memory_and_the_writer_reads_it_at_once(
    stack: NativeStack, organizer: ApiUser, instances: list[Running]
) -> None:
    a, b = instances
    received = await instance_metric(b, "cache_invalidations_total", outcome="received")
    event = create_event(stack, organizer)
    await received_exactly(b, received + MESSAGES_PER_WRITE)
    path = f"/api/v1/events/{event['id']}"
    etag = (await a.client.get(path)).headers["etag"]
    hits_before = await instance_metric(b, "cache_local_lookups_total", cache="event", outcome="hit")
    assert await title_of(b, path) == event["title"]  # B fills its memory ...
    assert await title_of(b, path) == event["title"]  # ... and answers from it, with no Redis round trip
    assert await instance_metric(b, "cache_local_lookups_total", cache="event", outcome="hit") == hits_before + 1

    patched = await a.client.patch(path, json={"title": "Renamed"}, headers={**organizer.headers, "If-Match": etag})
    assert patched.status_code == 200, patched.text
    assert await title_of(a, path) == "Renamed"  # the writer's worker put the new version in its own memory
    assert await title_of(b, path, organizer.headers) == "Renamed"  # an organizer reads past B's memory

    async def b_has_it() -> bool:
        return await title_of(b, path) == "Renamed"

    await wait_for_async(
        b_has_it, timeout_s=MESSAGE_WAIT_S, what="B dropping the old version on the message", interval_s=0.001
    )
    await received_exactly(b, received + 2 * MESSAGES_PER_WRITE)
    assert await instance_metric(b, "cache_local_evictions_total", cache="event", reason="invalidated") == 1


async def test_a_new_event_reaches_the_other_instances_list_pages_through_the_announced_generation(
    stack: NativeStack, organizer: ApiUser, instances: list[Running]
) -> None:
    b = instances[1]
    first = create_event(stack, organizer)
    path = f"/api/v1/events?city={first['city']}"
    for _ in range(2):  # the second read is answered from B's memory: the generation and the page
        assert [item["id"] for item in (await b.client.get(path)).json()["items"]] == [first["id"]]
    assert await instance_metric(b, "cache_local_lookups_total", cache="event-list", outcome="hit") >= 1
    second = create_event(stack, organizer, city=first["city"], starts_at="2027-06-02T20:00:00+00:00")

    async def both_listed() -> bool:  # only the message (and the replica's lag) stands between B and the new page
        page = (await b.client.get(path)).json()["items"]
        return [item["id"] for item in page] == [first["id"], second["id"]]

    await wait_for_async(both_listed, timeout_s=MESSAGE_WAIT_S, what="the new event on B's list page")
    generation = {"cache": "event-list-generation", "reason": "invalidated"}
    assert await instance_metric(b, "cache_local_evictions_total", **generation) == 1  # the bump's message


# --- the real 2-worker app ------------------------------------------------------------------------------------------


@pytest.fixture
def connections(stack: NativeStack) -> Iterator[list[WorkerConnection]]:
    """One connection per worker, once both workers are subscribed (an earlier fault test may have cut them)."""
    wait_for(lambda: subscribed_workers(stack) == [1.0, 1.0], timeout_s=10, what="both workers subscribed")
    with two_workers(stack.app.url) as pinned:
        yield pinned


def app_metric(stack: NativeStack, name: str, **labels: str) -> float:
    """Summed over the workers (the app's multiprocess exposition)."""
    return metric(httpx.get(f"{stack.app.url}/metrics").text, name, **labels)


def subscribed_workers(stack: NativeStack) -> list[float]:
    text = httpx.get(f"{stack.app.url}/metrics").text
    return [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "cache_invalidation_subscribed"
    ]


def received_by_both_workers(stack: NativeStack, count: float) -> None:
    """Wait until the workers have received ``count`` invalidation messages in all, then check it is not more."""
    wait_for(
        lambda: app_metric(stack, "cache_invalidations_total", outcome="received") >= count,
        timeout_s=MESSAGE_WAIT_S,
        what=f"{count} invalidation messages received",
    )
    assert app_metric(stack, "cache_invalidations_total", outcome="received") == count


def title_through(connection: WorkerConnection, path: str, user: ApiUser | None = None) -> str:
    status, _, body = connection.request("GET", path, headers=user.headers if user else None)
    assert status == 200, body
    return str(body["title"])


def patch_title(connection: WorkerConnection, organizer: ApiUser, path: str, title: str) -> dict[str, Any]:
    etag = connection.request("GET", path, headers=organizer.headers)[1]["etag"]
    status, _, body = connection.request(
        "PATCH", path, headers={**organizer.headers, "If-Match": etag}, body={"title": title}
    )
    assert status == 200, body
    return dict(body)


def replayed(stack: NativeStack, event_id: str, title: str) -> None:
    """Wait until the replica has the patch: anonymous reads that miss the cache go there, and its lag is a bound of
    its own (notes/db_scaling.md), not the cache's."""
    wait_for(
        lambda: stack.replica.sql(f"SELECT title FROM event WHERE id = '{event_id}'", "refstack") == title,
        timeout_s=10,
        what="the replica replaying the patch",
        interval_s=0.02,
    )


def polled_until_new(
    connection: WorkerConnection, path: str, new_title: str, deadline_s: float
) -> list[tuple[float, str]]:
    """Read through ``connection`` until it answers ``new_title`` (at most ``deadline_s``): each read's start and
    answer."""
    seen: list[tuple[float, str]] = []

    def answered_new() -> bool:
        began = time.monotonic()
        seen.append((began, title_through(connection, path)))
        return seen[-1][1] == new_title

    wait_for(answered_new, timeout_s=deadline_s, what=f"the worker to answer {new_title!r}", interval_s=0.005)
    return seen


def test_a_patch_through_one_worker_is_dropped_by_the_other_worker_and_the_writer_reads_it_at_once(
    stack: NativeStack, organizer: ApiUser, connections: list[WorkerConnection]
) -> None:
    worker_a, worker_b = connections
    received = app_metric(stack, "cache_invalidations_total", outcome="received")
    event = create_event(stack, organizer)
    received_by_both_workers(stack, received + 2 * MESSAGES_PER_WRITE)
    path = f"/api/v1/events/{event['id']}"
    assert title_through(worker_b, path) == event["title"]  # B holds version 1 in its memory

    patch_title(worker_a, organizer, path, "Renamed")
    assert title_through(worker_b, path, organizer) == "Renamed"  # the writer, on the other worker, at once
    seen = polled_until_new(worker_b, path, "Renamed", deadline_s=STACK_LOCAL_TTL_S + REQUEST_SLACK_S)
    assert seen[-1][1] == "Renamed"
    received_by_both_workers(stack, received + 4 * MESSAGES_PER_WRITE)  # the patch's messages, each by both


@pytest.mark.fault
def test_with_redis_restarted_no_worker_serves_an_old_value_past_the_local_ttl(
    stack: NativeStack, organizer: ApiUser, connections: list[WorkerConnection], fault: FaultInjector
) -> None:
    """The restart drops both subscriptions, so both workers flush their memory at once; a write made while Redis
    is down is announced to nobody, and the local TTL is what bounds any copy made meanwhile."""
    worker_a, worker_b = connections
    event = create_event(stack, organizer)
    path = f"/api/v1/events/{event['id']}"
    assert title_through(worker_b, path) == event["title"]
    filled = time.monotonic()  # B's copy of version 1 expires before filled + the local TTL
    lost_before = app_metric(stack, "cache_invalidations_total", outcome="lost")
    subscribed_before = app_metric(stack, "cache_invalidations_total", outcome="subscribed")

    fault("redis", "stop")
    patch_title(worker_a, organizer, path, "Changed while Redis was down")
    fault("redis", "start")
    replayed(stack, event["id"], "Changed while Redis was down")
    seen = polled_until_new(
        worker_b, path, "Changed while Redis was down", deadline_s=STACK_LOCAL_TTL_S + REQUEST_SLACK_S
    )
    stale_past_bound = [(began - filled, title) for began, title in seen if began >= filled + STACK_LOCAL_TTL_S]
    assert all(title == "Changed while Redis was down" for _, title in stale_past_bound), stale_past_bound
    wait_for(
        lambda: app_metric(stack, "cache_invalidations_total", outcome="lost") >= lost_before + 2,
        timeout_s=MESSAGE_WAIT_S,
        what="both workers counting their lost subscription",
    )
    assert app_metric(stack, "cache_invalidations_total", outcome="lost") == lost_before + 2
    wait_for(
        lambda: subscribed_workers(stack) == [1.0, 1.0],
        timeout_s=10,
        what="both workers subscribed again",
    )
    assert app_metric(stack, "cache_invalidations_total", outcome="subscribed") == subscribed_before + 2


@pytest.mark.fault
def test_a_message_lost_to_a_frozen_redis_costs_at_most_the_local_ttl(
    stack: NativeStack, organizer: ApiUser, connections: list[WorkerConnection], fault: FaultInjector
) -> None:
    """Frozen, Redis keeps every subscription open and takes no message: the write-through and its announcement
    time out, and B's copy of version 1 is dropped by its TTL alone. No read that B begins after the fill plus the
    local TTL may answer version 1."""
    worker_a, worker_b = connections
    event = create_event(stack, organizer)
    path = f"/api/v1/events/{event['id']}"
    etag = worker_a.request("GET", path, headers=organizer.headers)[1]["etag"]
    assert title_through(worker_b, path) == event["title"]
    filled = time.monotonic()
    fault("redis", "pause")
    status, _, _ = worker_a.request(
        "PATCH", path, headers={**organizer.headers, "If-Match": etag}, body={"title": "Changed while frozen"}
    )
    assert status == 200
    replayed(stack, event["id"], "Changed while frozen")
    seen = polled_until_new(worker_b, path, "Changed while frozen", deadline_s=STACK_LOCAL_TTL_S + REQUEST_SLACK_S)
    past_bound = [(round(began - filled, 3), title) for began, title in seen if began >= filled + STACK_LOCAL_TTL_S]
    assert all(title == "Changed while frozen" for _, title in past_bound), past_bound
    assert subscribed_workers(stack) == [1.0, 1.0]  # nothing told the workers; only the TTL ended B's copy
