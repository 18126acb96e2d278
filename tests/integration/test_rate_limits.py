"""Per-account rate limits against the real Redis: the quota, the 429 and its fields, the script cache forgotten,
the limit lifting, concurrent requests counted exactly, and each route's rule when Redis is paused or stopped.

The session app's limits are the generous defaults (no test meets them), so each test serves its own app in-process
with small limits, on the session stack's PostgreSQL and Redis. See notes/redis.md, "Rate limits in one round trip".
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import AmqpDsn, HttpUrl, PostgresDsn, RedisDsn

from app.settings import Settings
from stack.native.stack import NativeStack
from tests.api_users import ApiUser, call, create_event, new_user
from tests.fault_injector import FaultInjector
from tests.in_process_app import Running, running
from tests.polling import wait_for_async

PROBLEM = "application/problem+json"


def limited_settings(stack: NativeStack, **limits: Any) -> Settings:
    """The session stack's dependencies, no background jobs, and the limits under test."""
    env = stack.app_environment()
    return Settings(
        database_url=PostgresDsn(env["REFSTACK_DATABASE_URL"]),
        redis_url=RedisDsn(env["REFSTACK_REDIS_URL"]),
        amqp_url=AmqpDsn(env["REFSTACK_AMQP_URL"]),
        payments_url=HttpUrl(env["REFSTACK_PAYMENTS_URL"]),
        sweeper_enabled=False,
        reconciler_enabled=False,
        # the stack's own relays publish what these apps write; this one would declare the queues with the
        # production x-delivery-limit, which the stack's declared queues (3) refuse
        outbox_relay_enabled=False,
        max_active_holds_per_user=50,
        **limits,
    )


def seats_of(stack: NativeStack, seats: int) -> tuple[str, list[str]]:
    organizer = new_user(stack, organizer=True, label="organizer")
    event = create_event(stack, organizer, rows=1, seats_per_row=seats)
    items = call(stack, "GET", f"/api/v1/events/{event['id']}/seats")[2]["items"]
    return event["id"], [seat["id"] for seat in items]


async def hold(app: Running, user: ApiUser, event_id: str, seat_id: str) -> httpx.Response:
    return await app.client.post(f"/api/v1/events/{event_id}/holds", json={"seat_ids": [seat_id]}, headers=user.headers)


async def book_unknown_hold(app: Running, user: ApiUser) -> httpx.Response:
    body = {"hold_id": str(uuid.uuid4()), "card_token": "tok_visa"}
    return await app.client.post("/api/v1/bookings", json=body, headers=user.headers)


async def decisions(app: Running) -> dict[tuple[str, str], float]:
    """``rate_limit_decisions_total`` at the app's own ``/metrics``, by (policy, outcome)."""
    exposition = (await app.client.get("/metrics")).text
    return {
        (sample.labels["policy"], sample.labels["outcome"]): sample.value
        for family in text_string_to_metric_families(exposition)
        if family.name == "rate_limit_decisions"
        for sample in family.samples
        if sample.name == "rate_limit_decisions_total"
    }


def holds_of(stack: NativeStack, user: ApiUser) -> int:
    return int(stack.primary.sql(f"SELECT count(*) FROM hold WHERE user_id = '{user.id}'", "refstack"))


async def test_holds_past_the_quota_are_429_per_account_with_the_ietf_fields(stack: NativeStack) -> None:
    event_id, seats = seats_of(stack, 6)
    buyer, neighbour = new_user(stack, label="bot"), new_user(stack, label="neighbour")
    async with running(limited_settings(stack, rate_limit_holds=3, rate_limit_window_s=60)) as app:
        answers = [await hold(app, buyer, event_id, seat) for seat in seats[:5]]
        other = await hold(app, neighbour, event_id, seats[5])  # same client address, another account
        counted = await decisions(app)

    assert [a.status_code for a in answers] == [201, 201, 201, 429, 429]
    assert [a.headers["RateLimit"].split(";")[1] for a in answers[:3]] == ["r=2", "r=1", "r=0"]
    assert {a.headers["RateLimit-Policy"] for a in answers} == {'"holds";q=3;w=60'}
    refused = answers[3]
    assert refused.headers["Content-Type"].startswith(PROBLEM)
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 20  # one request's worth of a 60 s window of 3, less what has passed since
    assert refused.headers["RateLimit"] == f'"holds";r=0;t={retry_after}'
    problem = refused.json()
    assert problem["type"] == "https://refstack.dev/problems/too-many-requests"
    assert (problem["status"], problem["violated-policies"]) == (429, ["holds"])
    assert holds_of(stack, buyer) == 3  # a refused request reached no use case
    assert other.status_code == 201
    assert counted == {("holds", "admitted"): 4, ("holds", "limited"): 2}


async def test_bookings_past_the_quota_are_429(stack: NativeStack) -> None:
    buyer = new_user(stack, label="carder")
    async with running(limited_settings(stack, rate_limit_bookings=2)) as app:
        answers = [await book_unknown_hold(app, buyer) for _ in range(3)]
    assert [a.status_code == 429 for a in answers] == [False, False, True], [a.status_code for a in answers]
    assert answers[2].headers["RateLimit-Policy"] == '"bookings";q=2;w=60'
    assert answers[2].json()["violated-policies"] == ["bookings"]


async def test_concurrent_requests_are_counted_exactly(stack: NativeStack) -> None:
    """The decision and its write are one script: 20 requests at once against a quota of 5 admit exactly 5."""
    event_id, seats = seats_of(stack, 20)
    buyer = new_user(stack, label="burst")
    async with running(limited_settings(stack, rate_limit_holds=5)) as app:
        answers = await asyncio.gather(*(hold(app, buyer, event_id, seat) for seat in seats))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 5 + [429] * 15
    assert holds_of(stack, buyer) == 5


async def test_a_script_cache_flushed_under_the_app_is_loaded_again(stack: NativeStack) -> None:
    """EVALSHA answers NOSCRIPT after a restart or SCRIPT FLUSH; the limiter loads the script and carries on."""
    event_id, seats = seats_of(stack, 2)
    buyer = new_user(stack, label="flush")
    async with running(limited_settings(stack, rate_limit_holds=5)) as app:
        first = await hold(app, buyer, event_id, seats[0])
        redis = app.state["redis"]
        await redis.script_flush()
        assert await redis.script_exists(app.state["rate_limiter"].sha) == [False]
        second = await hold(app, buyer, event_id, seats[1])
        assert await redis.script_exists(app.state["rate_limiter"].sha) == [True]
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.headers["RateLimit"].startswith('"holds";r=3;')  # the count survived: only the script was lost


async def test_the_limit_lifts_when_retry_after_has_passed(stack: NativeStack) -> None:
    event_id, seats = seats_of(stack, 4)
    buyer = new_user(stack, label="patient")
    async with running(limited_settings(stack, rate_limit_holds=2, rate_limit_window_s=1)) as app:
        assert [(await hold(app, buyer, event_id, seat)).status_code for seat in seats[:3]] == [201, 201, 429]

        async def admitted() -> bool:
            return (await hold(app, buyer, event_id, seats[3])).status_code == 201

        await wait_for_async(admitted, timeout_s=5, what="a hold admitted once one interval (0.5 s) has passed")


@pytest.mark.parametrize("verb", ["pause", "stop"])
async def test_with_redis_down_holds_fail_open_and_bookings_fail_closed(
    stack: NativeStack, fault: FaultInjector, verb: str
) -> None:
    event_id, seats = seats_of(stack, 2)
    buyer = new_user(stack, label="outage")
    async with running(limited_settings(stack, rate_limit_holds=1, rate_limit_bookings=1)) as app:
        fault("redis", verb)
        held = [await hold(app, buyer, event_id, seat) for seat in seats]  # twice the quota: nothing counts
        booking = await book_unknown_hold(app, buyer)
        counted = await decisions(app)

    assert [h.status_code for h in held] == [201, 201]
    assert all("RateLimit" not in h.headers for h in held)  # nothing was metered, so nothing is claimed
    assert booking.status_code == 503
    assert booking.headers["Retry-After"] == "1"
    assert booking.json()["type"] == "https://refstack.dev/problems/rate-limit-unavailable"
    assert counted == {("holds", "failed-open"): 2, ("bookings", "failed-closed"): 1}  # seen, not only logged


async def test_after_a_redis_restart_the_next_booking_is_metered_not_refused(
    stack: NativeStack, fault: FaultInjector
) -> None:
    """A restart leaves each worker's pooled connection dead; the limiter's one retry on a fresh connection keeps
    the fail-closed rule for an outage, not for the first request after one."""
    buyer = new_user(stack, label="restart")
    async with running(limited_settings(stack, rate_limit_bookings=5)) as app:
        before = await book_unknown_hold(app, buyer)  # leaves a connection in the pool
        fault("redis", "restart")
        after = await book_unknown_hold(app, buyer)
        counted = await decisions(app)
    assert (before.status_code, after.status_code) == (404, 404)  # metered, then refused by the use case
    assert counted == {("bookings", "admitted"): 2}  # nothing failed closed: the retry found a fresh connection
