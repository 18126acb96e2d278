"""The payment reconciler's Redis lease and its fencing tokens, against the session stack's Redis and primary.

The claims (notes/redis.md, "A lease with fencing tokens"): one holder at a time, released and renewed only by
its owner; every grant's token is above the last (and above the newest PostgreSQL has seen, even after Redis lost
its counter); a round runs only under the lease, and is skipped when Redis cannot be asked; and the fault the
lease alone cannot stop: a holder stopped (SIGSTOP) past its lease, a second reconciler takes over and books the
hold, the first resumes believing it still holds the lease, and PostgreSQL refuses its write. Each reconciler round
runs in a process of its own (tests/reconciler_process.py) under a lease name of this test's own, so the app's
workers (which reconcile under ``payment-reconciler``) never contend with it.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from app.cache.client import open_redis
from app.cache.lease import HeldLease, RedisLease
from app.settings import Settings
from stack.native.stack import NativeStack
from tests.api_users import ApiUser, new_user
from tests.bookings import book, charges, held, program, sql
from tests.polling import line_starting, wait_for, wait_for_async

pytestmark = pytest.mark.fault
REPO = Path(__file__).resolve().parents[2]
GRACE_S = 10.0  # the reconcilers' own; the app's is 60 s, so its workers leave this test's holds alone
PAST_GRACE = "interval '20 seconds'"
TTL_MS = 1000


@pytest.fixture
async def redis(stack: NativeStack) -> AsyncIterator[Redis]:
    client = open_redis(Settings(redis_url=stack.redis.url))
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def lease_name() -> str:
    return f"reconciler-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def organizer(stack: NativeStack) -> ApiUser:
    return new_user(stack, organizer=True, label="lease-organizer")


def unknown_outcome_hold(stack: NativeStack, simulator: str, organizer: ApiUser) -> dict[str, Any]:
    """A hold left ``paying`` by a booking whose charge was made and whose reply was garbled, past the grace."""
    buyer = new_user(stack, label="lease-buyer")
    hold = held(stack, organizer, buyer)
    program(simulator, garble="not_json")
    status = book(stack, buyer, hold["id"])[0]
    program(simulator)
    assert status >= 500, status
    assert hold_status(stack, hold["id"]) == "paying"
    assert len(charges(simulator, hold["id"])) == 1
    stuck(stack, hold["id"])
    return hold


def stuck(stack: NativeStack, hold_id: str) -> None:
    """Time passes: the hold's latest payment attempt (or lease) is older than the reconcilers' grace period."""
    sql(stack, f"update hold set paying_since = now() - {PAST_GRACE} where id = '{hold_id}'")


def hold_status(stack: NativeStack, hold_id: str) -> str:
    return sql(stack, f"select status from hold where id = '{hold_id}'")


def bookings_of(stack: NativeStack, hold_id: str) -> int:
    return int(sql(stack, f"select count(*) from booking where hold_id = '{hold_id}'"))


def newest_token_in_postgres(stack: NativeStack, name: str) -> str:
    return sql(stack, f"select token from lease_fence where name = '{name}'")


def round_config(stack: NativeStack, lease: str, **overrides: object) -> str:
    config = {
        "database_url": stack.primary.direct_url.replace("postgresql://", "postgresql+asyncpg://", 1),
        "redis_url": stack.redis.url,
        "payments_url": stack.payments.url,
        "lease": lease,
        "ttl_ms": TTL_MS,
        "grace_s": GRACE_S,
        "pause": False,
        **overrides,
    }
    return json.dumps(config)


async def start_round(config: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.reconciler_process", config, cwd=REPO, stdout=asyncio.subprocess.PIPE
    )


async def report_of(process: asyncio.subprocess.Process) -> dict[str, Any]:
    report = json.loads(await line_starting(process, "REPORT ", timeout_s=60))
    assert await process.wait() == 0
    return dict(report)


async def one_round(stack: NativeStack, lease: str, **overrides: object) -> dict[str, Any]:
    return await report_of(await start_round(round_config(stack, lease, **overrides)))


def stopped(pid: int) -> bool:
    """The process is in the stopped state (``T`` in /proc/<pid>/stat)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


async def test_one_holder_at_a_time_and_only_the_owner_renews_or_releases(redis: Redis, lease_name: str) -> None:
    lease = RedisLease(redis, lease_name, ttl_ms=10_000)
    first = await lease.acquire()
    assert first is not None
    assert await lease.acquire() is None  # held: nobody else gets it
    impostor = HeldLease(first.name, "someone-else", first.token)
    assert not await lease.renew(impostor)
    assert impostor.lost
    assert not await lease.release(impostor)  # compare-and-delete: not the owner, nothing deleted
    assert await lease.acquire() is None
    assert await lease.renew(first)
    assert await lease.release(first)
    second = await lease.acquire()
    assert second is not None
    assert second.token == first.token + 1
    assert await lease.release(second)
    assert not await lease.release(second)  # already free


async def test_a_grant_is_above_the_floor_when_redis_has_lost_its_counter(redis: Redis, lease_name: str) -> None:
    lease = RedisLease(redis, lease_name, ttl_ms=10_000)
    first = await lease.acquire()
    assert first is not None
    assert await lease.release(first)
    await redis.delete(f"{{lease:{lease_name}}}:token")  # what a restart of a Redis without persistence does
    after_restart = await lease.acquire(floor=41)
    assert after_restart is not None
    assert after_restart.token == 42
    assert await lease.release(after_restart)


async def test_the_lease_is_renewed_while_its_holder_works(redis: Redis, lease_name: str) -> None:
    lease = RedisLease(redis, lease_name, ttl_ms=300)
    async with lease.holding() as held_lease:
        assert held_lease is not None
        since = time.monotonic()

        async def alive_for_three_ttls() -> bool:
            assert await redis.pttl(f"{{lease:{lease_name}}}") > 0, "the lease expired while its holder worked"
            return time.monotonic() - since > 0.9

        await wait_for_async(alive_for_three_ttls, timeout_s=5, what="the held lease to outlive three TTLs")
        assert not held_lease.lost
    assert await lease_is_free(redis, lease_name)  # released on the way out


@pytest.mark.usefixtures("closed_breakers")
async def test_a_round_is_skipped_without_redis_and_while_another_holds_the_lease(
    stack: NativeStack, simulator: str, organizer: ApiUser, redis: Redis, lease_name: str
) -> None:
    hold = unknown_outcome_hold(stack, simulator, organizer)
    with socket.socket() as probe:  # a port nobody listens on: Redis cannot be asked
        probe.bind(("127.0.0.1", 0))
        closed = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"
    skipped = await one_round(stack, lease_name, redis_url=closed)
    assert skipped == {"round": "redis-down", "token": None, "settled": {}, "rounds_counted": 1.0}

    other = await RedisLease(redis, lease_name, ttl_ms=30_000).acquire()
    assert other is not None
    busy = await one_round(stack, lease_name)
    assert busy == {"round": "busy", "token": None, "settled": {}, "rounds_counted": 1.0}

    assert hold_status(stack, hold["id"]) == "paying"  # never asked about, never leased
    assert sql(stack, f"select paying_since < now() - interval '15 seconds' from hold where id = '{hold['id']}'") == "t"
    assert newest_token_in_postgres(stack, lease_name) == ""  # no round wrote under this lease


@pytest.mark.usefixtures("closed_breakers")
async def test_a_holder_stopped_past_its_lease_is_fenced_and_nothing_is_settled_twice(
    stack: NativeStack, simulator: str, organizer: ApiUser, redis: Redis, lease_name: str
) -> None:
    hold = unknown_outcome_hold(stack, simulator, organizer)
    first = await start_round(round_config(stack, lease_name, pause=True))
    try:
        await line_starting(first, "PAUSED", timeout_s=60)  # leased the batch, asked the provider, not yet written
        wait_for(lambda: stopped(first.pid), timeout_s=10, what="the first reconciler to be stopped")
        first_token = int(newest_token_in_postgres(stack, lease_name))
        await wait_for_async(
            lambda: lease_is_free(redis, lease_name), timeout_s=10, what="the stopped holder's lease to expire"
        )
        stuck(stack, hold["id"])  # its lease of the hold runs out too while it sleeps

        second = await one_round(stack, lease_name)

        assert second["round"] == "ran"
        assert second["token"] == first_token + 1
        assert second["settled"].get("booked", 0) >= 1
        assert hold_status(stack, hold["id"]) == "booked"
        first.send_signal(signal.SIGCONT)
        resumed = await report_of(first)
    finally:
        if first.returncode is None:
            first.send_signal(signal.SIGCONT)
            first.kill()
            await first.wait()

    # it woke up holding the answer for a hold, wrote it, and was refused: its token is older than the second's
    assert resumed == {"round": "fenced", "token": first_token, "settled": {}, "rounds_counted": 1.0}
    assert newest_token_in_postgres(stack, lease_name) == str(first_token + 1)
    assert hold_status(stack, hold["id"]) == "booked"
    assert bookings_of(stack, hold["id"]) == 1
    assert len(charges(simulator, hold["id"])) == 1  # asked twice, charged once, booked once


async def lease_is_free(redis: Redis, lease_name: str) -> bool:
    return int(await redis.exists(f"{{lease:{lease_name}}}")) == 0
