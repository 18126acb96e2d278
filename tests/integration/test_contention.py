"""No double booking under contention, on the real primary.

1000 concurrent hold attempts (50 in flight, through Nginx, two app workers) over 50 seats: exactly 50 seats end
up held, no seat is in two successful holds, every refusal is a 409 (the seat was taken, or rarely a lock wait past
``lock_timeout`` on a starved machine), no 5xx. Then two ``HoldSweeper``s run
concurrently over 200 expired holds: each hold is released exactly once, and a hold locked by someone else is
skipped rather than waited for. The sweepers work in a private database migrated for this module, so the app's
own sweepers (one per worker) cannot take part in the count. See notes/postgres.md, "Contention".
"""

from __future__ import annotations

import asyncio
import random
import secrets
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from structlog.testing import capture_logs

from app.background import PeriodicJob, running
from app.observability.metrics import build_job_metrics
from app.services.sweeper import HoldSweeper
from app.services.unit_of_work import TransactionTimeouts, UnitOfWorkFactory
from stack.native.stack import NativeStack
from tests.api_users import ApiUser, call, create_event, new_user
from tests.polling import wait_for_async
from tests.private_database import private_database, sqlalchemy_url

SEATS = 50
ATTEMPTS = 1000
IN_FLIGHT = 50
USERS = 20


def attempts(seat_ids: list[str], rng: random.Random) -> list[list[str]]:
    """Every seat asked for alone at least ten times (so all 50 end up held), the rest 2–3 overlapping seats."""
    singles = [[seat] for seat in seat_ids for _ in range(10)]
    runs: list[list[str]] = []
    while len(singles) + len(runs) < ATTEMPTS:
        start = rng.randrange(len(seat_ids) - 2)
        runs.append(seat_ids[start : start + rng.choice((2, 3))])
    mixed = singles + runs
    rng.shuffle(mixed)
    return mixed


@pytest.mark.slow
async def test_a_thousand_concurrent_holds_never_oversell_fifty_seats(stack: NativeStack) -> None:
    organizer = new_user(stack, organizer=True, label="organizer")
    event = create_event(stack, organizer, rows=5, seats_per_row=10)
    seat_ids = [seat["id"] for seat in call(stack, "GET", f"/api/v1/events/{event['id']}/seats")[2]["items"]]
    assert len(seat_ids) == SEATS
    users: list[ApiUser] = await asyncio.gather(
        *(asyncio.to_thread(new_user, stack, label=f"buyer{n}") for n in range(USERS))
    )
    rng = random.Random(4)  # fixed seed: the same storm every run
    gate = asyncio.Semaphore(IN_FLIGHT)
    url = f"{stack.nginx.url}/api/v1/events/{event['id']}/holds"
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)

    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def attempt(n: int, wanted: list[str]) -> tuple[int, Any]:
            async with gate:
                answer = await client.post(url, json={"seat_ids": wanted}, headers=users[n % USERS].headers)
            return answer.status_code, answer.json()

        began = time.monotonic()
        answers = await asyncio.gather(*(attempt(n, w) for n, w in enumerate(attempts(seat_ids, rng))))
        elapsed = time.monotonic() - began

    by_status = Counter(status for status, _ in answers)
    print(f"\n{ATTEMPTS} hold attempts in {elapsed:.2f} s: {dict(by_status)}")
    assert set(by_status) == {201, 409}, by_status
    refusals = [body for status, body in answers if status == 409]
    kinds = Counter(body["type"].rsplit("/", 1)[-1] for body in refusals)
    # seat-not-available is the race lost; resource-busy (a lock wait past the stack's 500 ms lock_timeout) is the
    # bounded wait doing its job when the 2-core machine starves the storm, as one full run in eight saw:
    # both leave nothing behind (checked below), and neither may be anything else
    assert set(kinds) <= {"seat-not-available", "resource-busy"}, kinds
    assert kinds["seat-not-available"] >= len(refusals) * 0.9, kinds

    granted = [body for status, body in answers if status == 201]
    granted_seats = [seat for body in granted for seat in body["seat_ids"]]
    assert len(granted_seats) == len(set(granted_seats)) == SEATS  # no seat granted twice: oversold == 0

    sql = stack.primary.sql
    e = event["id"]
    assert sql(f"SELECT count(*) FROM seat WHERE event_id = '{e}' AND status = 'held'", "refstack") == str(SEATS)
    active = sql(f"SELECT count(*) FROM hold WHERE event_id = '{e}' AND status = 'active'", "refstack")
    assert active == str(len(granted))  # refused attempts left no hold row behind
    claimed = sql(
        f"SELECT string_agg(hold_id || ':' || id, ',' ORDER BY id) FROM seat WHERE event_id = '{e}'", "refstack"
    ).split(",")
    assert sorted(claimed) == sorted(f"{body['id']}:{seat}" for body in granted for seat in body["seat_ids"])


# -- sweepers ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def private_db(stack: NativeStack) -> Iterator[str]:
    """A fresh database migrated to head, which the running app knows nothing about."""
    with private_database(stack, "sweep") as dsn:
        yield sqlalchemy_url(dsn)


@pytest.fixture
async def engines(private_db: str) -> AsyncIterator[list[AsyncEngine]]:
    """Two engines, so each sweeper has its own connection, plus one for setup and checks."""
    made = [create_async_engine(private_db, pool_size=1, max_overflow=0) for _ in range(3)]
    try:
        yield made
    finally:
        for engine in made:
            await engine.dispose()


SEED = """
WITH owner AS (
    INSERT INTO app_user (email, password_hash) VALUES (:email, 'x') RETURNING id
), show AS (
    INSERT INTO event (organizer_id, title, city, venue, starts_at, price_cents, rows, seats_per_row)
    SELECT id, 'Sweep', 'Nowhere', 'Hall', now() + interval '30 days', 100, 100, 100 FROM owner
    RETURNING id, organizer_id
), holds AS (
    INSERT INTO hold (event_id, user_id, status, expires_at)
    SELECT show.id, show.organizer_id, :status, now() + make_interval(secs => :expires_in_s)
    FROM show, generate_series(1, :n) RETURNING id, event_id
), numbered AS (
    SELECT event_id, id, row_number() OVER () - 1 AS k FROM holds
)
INSERT INTO seat (event_id, row, number, status, hold_id)
SELECT event_id, k / 100 + 1, k % 100 + 1, 'held', id FROM numbered
RETURNING event_id
"""


def uows(engine: AsyncEngine) -> UnitOfWorkFactory:
    """Units of work as the app's: with its transaction timeouts (the test stack's lock_timeout)."""
    return UnitOfWorkFactory(engine, TransactionTimeouts(lock_ms=500, statement_ms=4000))


async def seed(engine: AsyncEngine, *, holds: int, status: str = "active", expires_in_s: float) -> str:
    """One event whose every seat is held by its own hold, all in ``status``, expiring ``expires_in_s`` from now."""
    params = {"email": f"sweep-{secrets.token_hex(6)}@example.com", "n": holds, "status": status}
    async with engine.begin() as conn:
        rows = (await conn.execute(text(SEED), {**params, "expires_in_s": expires_in_s})).all()
    return str(rows[0].event_id)


async def tally(engine: AsyncEngine, event_id: str) -> dict[str, int]:
    query = text("""
        SELECT 'hold:' || status, count(*) FROM hold WHERE event_id = :e GROUP BY status
        UNION ALL SELECT 'seat:' || status, count(*) FROM seat WHERE event_id = :e GROUP BY status
    """)
    async with engine.connect() as conn:
        return {kind: count for kind, count in (await conn.execute(query, {"e": event_id})).all()}


async def test_two_concurrent_sweepers_release_each_expired_hold_exactly_once(engines: list[AsyncEngine]) -> None:
    first, second, checks = engines
    expired = await seed(checks, holds=200, expires_in_s=-60)
    paying = await seed(checks, holds=5, status="paying", expires_in_s=-60)
    fresh = await seed(checks, holds=5, expires_in_s=600)

    sweepers = [HoldSweeper(uows(first), batch=7), HoldSweeper(uows(second), batch=7)]
    counts = await asyncio.gather(*(sweeper.sweep_once() for sweeper in sweepers))
    print(f"\nsweeper counts: {counts}")

    assert sum(counts) == 200
    assert await tally(checks, expired) == {"hold:expired": 200, "seat:available": 200}
    assert await tally(checks, paying) == {"hold:paying": 5, "seat:held": 5}  # a charge in flight is never swept
    assert await tally(checks, fresh) == {"hold:active": 5, "seat:held": 5}
    assert await asyncio.gather(*(sweeper.sweep_once() for sweeper in sweepers)) == [0, 0]


async def test_a_sweeper_skips_holds_locked_elsewhere_instead_of_waiting(engines: list[AsyncEngine]) -> None:
    first, _, checks = engines
    event_id = await seed(checks, holds=30, expires_in_s=-60)
    sweeper = HoldSweeper(uows(first), batch=500)
    async with checks.connect() as blocker, blocker.begin():
        locked = text("SELECT id FROM hold WHERE event_id = :e ORDER BY id LIMIT 10 FOR UPDATE")
        await blocker.execute(locked, {"e": event_id})
        async with asyncio.timeout(5):  # without SKIP LOCKED this would wait for the blocker forever
            assert await sweeper.sweep_once() == 20
    assert await sweeper.sweep_once() == 10
    assert await tally(checks, event_id) == {"hold:expired": 30, "seat:available": 30}


async def test_the_sweep_loop_outlives_failures_and_stops_when_cancelled() -> None:
    with socket.socket() as probe:  # a port nobody listens on: every sweep fails at once with "refused"
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = create_async_engine(f"postgresql+asyncpg://app:app@127.0.0.1:{port}/refstack")
    try:
        with capture_logs() as logs:
            sweep = PeriodicJob("hold-sweeper", 0.01, HoldSweeper(uows(engine), batch=10).sweep_once)
            async with running(sweep, build_job_metrics(CollectorRegistry())) as task:

                async def failed_thrice() -> bool:
                    return [(e["event"], e.get("job")) for e in logs].count(
                        ("background_job_failed", "hold-sweeper")
                    ) >= 3

                await wait_for_async(failed_thrice, timeout_s=5, what="three failed sweeps")
                assert not task.done()
        assert task.cancelled()
    finally:
        await engine.dispose()
