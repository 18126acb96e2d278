"""A writer queued behind a row lock gives up after ``lock_timeout`` with a clear 409, instead of hanging.

A transaction opened here (a direct asyncpg connection, past the fault proxy) locks an event's row with
``SELECT … FOR UPDATE`` and keeps it. ``PATCH /api/v1/events/{id}`` through Nginx then waits for that lock inside
a unit of work that began with ``SET LOCAL lock_timeout`` (500 ms in the test stack): PostgreSQL cancels the wait
with SQLSTATE 55P03 and the app answers 409 ``resource-busy`` in about half a second, far inside Nginx's 5 s. Once
the lock is gone the same PATCH succeeds. The same reasoning for migrations: one queued behind a long
transaction gives up after its own ``lock_timeout``. See notes/postgres.md, "Plans, indexes and timeouts" and
"Migrations".
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any

import asyncpg

from stack.native.stack import NativeStack
from tests.api_users import call, create_event, new_user
from tests.private_database import REPO, private_database, sqlalchemy_url

LOCK_TIMEOUT_S = 0.5  # REFSTACK_DB_LOCK_TIMEOUT_MS in tests/conftest.py


async def test_a_writer_blocked_by_a_row_lock_fails_fast_with_resource_busy(stack: NativeStack) -> None:
    organizer = new_user(stack, organizer=True, label="organizer")
    event = create_event(stack, organizer)
    path = f"/api/v1/events/{event['id']}"
    etag = call(stack, "GET", path)[1]["etag"]

    async def patch(title: str) -> tuple[int, dict[str, str], Any]:
        conditional = {"If-Match": etag}
        return await asyncio.to_thread(
            call, stack, "PATCH", path, user=organizer, body={"title": title}, headers=conditional
        )

    blocker = await asyncpg.connect(stack.primary.direct_url)
    try:
        locked = blocker.transaction()
        await locked.start()
        await blocker.execute("SELECT 1 FROM event WHERE id = $1 FOR UPDATE", event["id"])
        began = time.monotonic()
        status, headers, body = await patch("Blocked")
        waited = time.monotonic() - began
        await locked.rollback()
    finally:
        await blocker.close()

    print(f"\nblocked PATCH answered {status} in {waited * 1000:.0f} ms")
    assert status == 409, body
    assert headers["content-type"] == "application/problem+json"
    assert body["type"] == "https://refstack.dev/problems/resource-busy"
    assert LOCK_TIMEOUT_S <= waited < LOCK_TIMEOUT_S + 1.5  # gave up at lock_timeout, not at 5 s or never

    status, _, body = await patch("Unblocked")
    assert status == 200, body
    assert body["title"] == "Unblocked"


def alembic(dsn: str, *args: str, lock_timeout_ms: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REFSTACK_DATABASE_URL": sqlalchemy_url(dsn)}
    env["REFSTACK_MIGRATION_LOCK_TIMEOUT_MS"] = str(lock_timeout_ms)
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


async def test_a_migration_queued_behind_a_long_transaction_gives_up_instead_of_blocking_everyone(
    stack: NativeStack,
) -> None:
    """Migration 0004 adds a foreign key to ``event``, which needs a lock that conflicts with any writer of
    ``event``. Behind a transaction that keeps writing there, it must fail within its ``lock_timeout`` (and leave
    nothing half-done: Alembic runs in one transaction), then succeed once the writer is gone."""
    with private_database(stack, "migrate") as dsn:
        assert alembic(dsn, "downgrade", "0003", lock_timeout_ms=3000).returncode == 0  # before event_webhook
        writer = await asyncpg.connect(dsn)
        try:
            async with writer.transaction():
                await writer.execute("LOCK TABLE event IN ROW EXCLUSIVE MODE")  # what any UPDATE of an event takes
                blocked = await asyncio.to_thread(alembic, dsn, "upgrade", "head", lock_timeout_ms=300)
        finally:
            await writer.close()
        assert blocked.returncode != 0
        assert "lock timeout" in blocked.stderr
        tables = stack.primary.sql(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'event_webhook'", database=dsn.rsplit("/", 1)[1]
        )
        assert tables == "0"  # nothing half-applied
        assert (await asyncio.to_thread(alembic, dsn, "upgrade", "head", lock_timeout_ms=300)).returncode == 0
