"""OWASP API6:2023, unrestricted access to sensitive business flows: a scalper bot cannot corner an event.

Each request of a bot is valid on its own; the abuse is the sum. So one account may ask for at most
``max_seats_per_hold`` seats per hold (422: that request can never succeed) and keep at most
``max_active_holds_per_user`` holds at once (409 ``hold-limit-reached``: it succeeds again once a hold is booked,
released or expired). The count is taken under a lock on the user's row, so concurrent requests of one account
cannot all slip under the cap. Everything goes through Nginx against the session app, whose cap is in
tests/conftest.py. See notes/security.md, "Resource caps per user".
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import asyncpg
import httpx
import pytest

from stack.native.stack import NativeStack
from tests.api_users import ApiUser, call, create_event, new_user
from tests.fault_injector import FaultInjector
from tests.polling import wait_for_async

LIMIT_REACHED = "https://refstack.dev/problems/hold-limit-reached"


def hold_cap(stack: NativeStack) -> int:
    return int(stack.app_settings["REFSTACK_MAX_ACTIVE_HOLDS_PER_USER"])


def seats_of(stack: NativeStack, organizer: ApiUser, seats: int) -> tuple[str, list[str]]:
    event = create_event(stack, organizer, rows=1, seats_per_row=seats)
    items = call(stack, "GET", f"/api/v1/events/{event['id']}/seats?limit=100")[2]["items"]
    return event["id"], [seat["id"] for seat in items]


def hold(stack: NativeStack, user: ApiUser, event_id: str, seat_ids: list[str]) -> tuple[int, Any]:
    status, _, body = call(stack, "POST", f"/api/v1/events/{event_id}/holds", user=user, body={"seat_ids": seat_ids})
    return status, body


def active_holds(stack: NativeStack, user: ApiUser) -> int:
    return int(
        stack.primary.sql(f"SELECT count(*) FROM hold WHERE user_id = '{user.id}' AND status = 'active'", "refstack")
    )


def test_more_seats_than_one_hold_may_take_is_422_and_holds_nothing(stack: NativeStack) -> None:
    organizer, bot = new_user(stack, organizer=True, label="organizer"), new_user(stack, label="bot")
    event_id, seats = seats_of(stack, organizer, 11)
    status, problem = hold(stack, bot, event_id, seats)  # max_seats_per_hold is 10
    assert status == 422
    assert problem["type"] == "https://refstack.dev/problems/validation-error"
    assert "at most 10 seats" in problem["detail"]
    assert active_holds(stack, bot) == 0
    assert hold(stack, bot, event_id, seats[:10])[0] == 201


def test_one_account_cannot_keep_more_active_holds_than_the_cap(stack: NativeStack) -> None:
    cap = hold_cap(stack)
    organizer, bot = new_user(stack, organizer=True, label="organizer"), new_user(stack, label="bot")
    event_id, seats = seats_of(stack, organizer, cap + 2)
    granted = [hold(stack, bot, event_id, [seat]) for seat in seats[:cap]]
    assert [status for status, _ in granted] == [201] * cap

    status, problem = hold(stack, bot, event_id, [seats[cap]])
    assert status == 409
    assert problem["type"] == LIMIT_REACHED
    assert problem["limit"] == cap
    assert active_holds(stack, bot) == cap
    seat_status = f"SELECT status FROM seat WHERE id = '{seats[cap]}'"
    assert stack.primary.sql(seat_status, "refstack") == "available"  # the refused hold claimed nothing

    # The cap counts holds that still hold: give one back and the next hold is accepted.
    assert call(stack, "DELETE", f"/api/v1/holds/{granted[0][1]['id']}", user=bot)[0] == 204
    assert hold(stack, bot, event_id, [seats[cap]])[0] == 201
    # Another account is not affected by the bot's cap.
    assert hold(stack, new_user(stack), event_id, [seats[cap + 1]])[0] == 201


@pytest.mark.fault
async def test_concurrent_holds_of_one_account_cannot_overshoot_the_cap(
    stack: NativeStack, fault: FaultInjector
) -> None:
    """At cap - 1, eight holds at once on eight free seats: exactly one fits.

    To make the race certain rather than likely, the test holds ``FOR UPDATE`` on the event row, so every racer
    stops at its hold INSERT (the foreign-key check needs ``KEY SHARE`` on the event), and lets them all go at
    once when all eight wait. From there each claims its seat, counts the user's holds and commits within a few
    milliseconds of the others, while the app's database link adds 20 ms a round trip (so "count" and "commit" are
    far enough apart for the racers to overlap): without the lock on the user's row they all count cap - 1 and get
    in. With it they pass one by one, ~40 ms each, inside the stack's 500 ms lock_timeout; the gate opens as soon as
    all eight wait."""
    cap, racers = hold_cap(stack), 8
    organizer, bot = new_user(stack, organizer=True, label="organizer"), new_user(stack, label="bot")
    event_id, seats = seats_of(stack, organizer, cap - 1 + racers)
    assert all(hold(stack, bot, event_id, [seat])[0] == 201 for seat in seats[: cap - 1])

    fault("postgres", "slow", 20)
    url = f"{stack.nginx.url}/api/v1/events/{event_id}/holds"
    # Diverting the hop ends the app's open database links (ss -K; the pool replaces each at its next checkout, and a
    # request caught on one mid-flight is a 503 database-unavailable); rounds of eight concurrent refusals (a seat
    # the bot already holds) open them again through the slow hop before the race, so no racer spends its
    # lock_timeout's worth of round trips connecting while the others wait.
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=racers)) as client:
        for _ in range(3):
            warm = [client.post(url, json={"seat_ids": [seats[0]]}, headers=bot.headers) for _ in range(racers)]
            warmed = {answer.status_code for answer in await asyncio.gather(*warm)}
            assert warmed <= {409, 503}, warmed
            if warmed == {409}:
                break
    gate, watcher = await asyncpg.connect(stack.primary.direct_url), await asyncpg.connect(stack.primary.direct_url)
    try:
        async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=racers)) as client:
            closed = gate.transaction()
            await closed.start()
            await gate.execute("SELECT 1 FROM event WHERE id = $1 FOR UPDATE", uuid.UUID(event_id))
            posts = [
                asyncio.ensure_future(client.post(url, json={"seat_ids": [seat]}, headers=bot.headers))
                for seat in seats[cap - 1 :]
            ]
            waiting_sql = "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid <> $1"

            async def all_at_the_gate() -> bool:
                return bool(await watcher.fetchval(waiting_sql, gate.get_server_pid()) >= racers)

            await wait_for_async(all_at_the_gate, timeout_s=5, what=f"all {racers} racers waiting at the gate")
            await closed.rollback()
            answers = await asyncio.gather(*posts)
    finally:
        await gate.close()
        await watcher.close()
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {201: 1, 409: racers - 1}, [answer.json().get("type") for answer in answers]
    assert {answer.json()["type"] for answer in answers if answer.status_code == 409} == {LIMIT_REACHED}
    assert active_holds(stack, bot) == cap
